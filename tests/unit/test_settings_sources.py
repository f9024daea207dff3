"""Settings files, end to end: each source and each precedence pair decides the URL and the
key a client sends, against a recording stub on 127.0.0.1; and Prefect 3.9's own
``get_client(sync_client=True)``, run in a fresh process with the same home, working
directory and environment (its settings are cached per process), sends the same."""

import http.server
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import threading
from typing import Dict, Iterator, List, Optional, Tuple

import pytest
from support.helpers import installed_prefect, prefect_is_older

from orchestration_client import SyncPrefectClient, get_client
from orchestration_client._settings import _load as _settings

Seen = Tuple[str, Optional[str]]  # (path, Authorization)


class RecordingStub:
    """Answers every GET with 200 and remembers its path and Authorization header."""

    def __init__(self) -> None:
        self.seen: List[Seen] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                stub.seen.append((self.path, self.headers.get("Authorization")))
                body = b'"hello"'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.root = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, tag: str) -> str:
        return f"{self.root}/{tag}/api"

    def take(self) -> List[Seen]:
        seen, self.seen = self.seen, []
        return seen

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stub() -> Iterator[RecordingStub]:
    server = RecordingStub()
    yield server
    server.stop()


class Layout:
    """A home directory and a working directory with settings files, and an environment."""

    def __init__(self, root: pathlib.Path) -> None:
        self.home = root / "home"
        self.cwd = root / "project"
        (self.home / ".prefect").mkdir(parents=True)
        self.cwd.mkdir()
        self.env: Dict[str, str] = {"HOME": str(self.home)}

    def write(self, relative: str, text: str) -> pathlib.Path:
        """``~/...`` goes under the home directory, anything else under the project."""
        path = self.home / relative[2:] if relative.startswith("~/") else self.cwd / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path


def profiles(active: str, **named: Dict[str, str]) -> str:
    lines = [f'active = "{active}"'] if active else []
    for name, values in named.items():
        lines.append(f"[profiles.{name}]")
        lines += [f'{key} = "{value}"' for key, value in values.items()]
    return "\n".join(lines) + "\n"


# Each source alone, written so that the URL and key name the source that supplied them.
def env_source(lay: Layout, url: str, key: str) -> None:
    lay.env.update(PREFECT_API_URL=url, PREFECT_API_KEY=key)


def dotenv_source(lay: Layout, url: str, key: str) -> None:
    lay.write(".env", f'# team settings\nexport PREFECT_API_URL="{url}"\nprefect_api_key={key}  # note\n')


def prefect_toml_source(lay: Layout, url: str, key: str) -> None:
    lay.write("prefect.toml", f'[api]\nurl = "{url}"\nkey = "{key}"\n')


def pyproject_source(lay: Layout, url: str, key: str) -> None:
    lay.write("pyproject.toml", f'[project]\nname = "x"\n[tool.prefect.api]\nurl = "{url}"\nkey = "{key}"\n')


def profile_source(lay: Layout, url: str, key: str) -> None:
    lay.write("~/.prefect/profiles.toml", profiles(
        "team", team={"PREFECT_API_URL": url, "PREFECT_API_KEY": key}, other={}))


SOURCES = {
    "env": env_source,
    "dotenv": dotenv_source,
    "prefect_toml": prefect_toml_source,
    "pyproject": pyproject_source,
    "profile": profile_source,
}
ORDER = list(SOURCES)  # highest priority first


def run_ours(lay: Layout, monkeypatch: pytest.MonkeyPatch, stub: RecordingStub) -> object:
    for name in [n for n in os.environ if n.upper().startswith("PREFECT_") or n == "HOME"]:
        monkeypatch.delenv(name)
    for name, value in lay.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(lay.cwd)
    # As if imported there, which is where Prefect's subprocess starts and reads its files.
    monkeypatch.setattr(_settings, "START_DIRECTORY", str(lay.cwd))
    try:
        with get_client() as client:
            client.hello()
    except ValueError as exc:
        return ("ValueError", str(exc))
    return stub.take()


PROBE = """
import json
from prefect.client.orchestration import get_client
try:
    client = get_client(sync_client=True)
except ValueError as exc:
    print(json.dumps(["ValueError"]))
else:
    client.hello()
    print(json.dumps(["ok"]))
"""


def run_prefect(lay: Layout, stub: RecordingStub) -> object:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **lay.env}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=lay.cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    return ("ValueError",) if outcome == ["ValueError"] else stub.take()


@pytest.mark.parametrize("source", ORDER)
def test_each_source_alone(
    source: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, stub: RecordingStub
) -> None:
    lay = Layout(tmp_path)
    SOURCES[source](lay, stub.url(source), f"key-{source}")
    assert run_ours(lay, monkeypatch, stub) == [(f"/{source}/api/hello", f"Bearer key-{source}")]


PAIRS = [(ORDER[i], ORDER[j]) for i in range(len(ORDER)) for j in range(i + 1, len(ORDER))]


@pytest.mark.parametrize("higher, lower", PAIRS)
def test_each_precedence_pair(
    higher: str, lower: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
    stub: RecordingStub,
) -> None:
    lay = Layout(tmp_path)
    SOURCES[lower](lay, stub.url(lower), f"key-{lower}")
    SOURCES[higher](lay, stub.url(higher), f"key-{higher}")
    assert run_ours(lay, monkeypatch, stub) == [(f"/{higher}/api/hello", f"Bearer key-{higher}")]


def test_url_and_key_may_come_from_different_sources(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, stub: RecordingStub
) -> None:
    lay = Layout(tmp_path)
    profile_source(lay, stub.url("profile"), "key-profile")
    lay.env["PREFECT_API_KEY"] = "key-env"
    assert run_ours(lay, monkeypatch, stub) == [("/profile/api/hello", "Bearer key-env")]


def test_explicit_arguments_beat_every_source(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, stub: RecordingStub
) -> None:
    lay = Layout(tmp_path)
    for source in ORDER:
        SOURCES[source](lay, stub.url(source), f"key-{source}")
    run_ours(lay, monkeypatch, stub)  # sets the environment and directory up
    with SyncPrefectClient(stub.url("explicit"), api_key="key-explicit") as client:
        client.hello()
    with get_client(httpx_settings={"base_url": stub.url("explicit")}) as client:
        client.hello()
    assert stub.take() == [
        ("/explicit/api/hello", "Bearer key-explicit"),
        ("/explicit/api/hello", "Bearer key-env"),  # as Prefect: the key is a setting
    ]


# ---- the same cases with Prefect's client -----------------------------------------------


def auth_profile(lay: Layout, url: str, key: str) -> None:
    lay.write("~/.prefect/profiles.toml", profiles(
        "selfhosted", selfhosted={"PREFECT_API_URL": url, "PREFECT_API_AUTH_STRING": "admin:" + key}))


def profile_named_by_variable(lay: Layout, url: str, key: str) -> None:
    lay.write("~/.prefect/profiles.toml", profiles(
        "other", other={"PREFECT_API_URL": "http://127.0.0.1:9/api"},
        chosen={"PREFECT_API_URL": url, "PREFECT_API_KEY": key}))
    lay.env["PREFECT_PROFILE"] = "chosen"


def profiles_path_variable(lay: Layout, url: str, key: str) -> None:
    path = lay.write("~/elsewhere/p.toml", profiles("x", x={"PREFECT_API_URL": url, "PREFECT_API_KEY": key}))
    lay.env["PREFECT_PROFILES_PATH"] = str(path)


def profiles_path_in_dotenv(lay: Layout, url: str, key: str) -> None:
    path = lay.write("~/elsewhere/p.toml", profiles("x", x={"PREFECT_API_URL": url, "PREFECT_API_KEY": key}))
    lay.write(".env", f"PREFECT_PROFILES_PATH={path}\n")


def profiles_path_in_prefect_toml(lay: Layout, url: str, key: str) -> None:
    path = lay.write("~/elsewhere/p.toml", profiles("x", x={"PREFECT_API_URL": url, "PREFECT_API_KEY": key}))
    lay.write("prefect.toml", f'profiles_path = "{path}"\n')


def prefect_home_variable(lay: Layout, url: str, key: str) -> None:
    path = lay.write("~/ph/profiles.toml", profiles("x", x={"PREFECT_API_URL": url, "PREFECT_API_KEY": key}))
    lay.env["PREFECT_HOME"] = str(path.parent)


def dotenv_expansion(lay: Layout, url: str, key: str) -> None:
    lay.env["TEAM_KEY"] = key
    lay.write(".env", f"ROOT='{url}'\nPREFECT_API_URL=${{ROOT}}\nPREFECT_API_KEY=\"${{TEAM_KEY}}\"\n")


def env_in_lower_and_mixed_case(lay: Layout, url: str, key: str) -> None:
    """Prefect matches environment names in any case."""
    lay.env.update(prefect_api_url=url, Prefect_Api_Key=key)


def env_both_spellings_lower_last(lay: Layout, url: str, key: str) -> None:
    """Two spellings of one name: the one later in the environment wins, in Prefect."""
    lay.env.update(PREFECT_API_URL="http://127.0.0.1:9/api", PREFECT_API_KEY="wrong")
    lay.env.update(prefect_api_url=url, prefect_api_KEY=key)


def env_both_spellings_upper_last(lay: Layout, url: str, key: str) -> None:
    lay.env.update(prefect_api_url="http://127.0.0.1:9/api", prefect_api_key="wrong")
    lay.env.update(PREFECT_API_URL=url, PREFECT_API_KEY=key)


def lower_case_env_beats_dotenv(lay: Layout, url: str, key: str) -> None:
    lay.write(".env", "PREFECT_API_URL=http://127.0.0.1:9/api\nPREFECT_API_KEY=wrong\n")
    lay.env.update(prefect_api_url=url, prefect_api_key=key)


def dotenv_both_spellings(lay: Layout, url: str, key: str) -> None:
    lay.write(".env", f"PREFECT_API_URL=http://127.0.0.1:9/api\nprefect_api_url={url}\n"
                      f"Prefect_Api_Key={key}\n")


def profile_without_url_refuses(lay: Layout, url: str, key: str) -> None:
    """A profiles file whose active profile has no URL: both refuse (no silent server)."""
    lay.write("~/.prefect/profiles.toml", profiles("empty", empty={"PREFECT_API_KEY": key}))


def empty_variable_hides_profile(lay: Layout, url: str, key: str) -> None:
    profile_source(lay, url, key)
    lay.env["PREFECT_API_URL"] = ""


def unit_test_mode_ignores_profiles(lay: Layout, url: str, key: str) -> None:
    profile_source(lay, url, key)
    lay.env["PREFECT_TESTING_UNIT_TEST_MODE"] = "1"


def unknown_profile_name(lay: Layout, url: str, key: str) -> None:
    """Prefect falls back to its built-in default profile; ephemeral off keeps it quick."""
    profile_source(lay, url, key)
    lay.env.update(PREFECT_PROFILE="typo", PREFECT_SERVER_EPHEMERAL_ENABLED="false")


EXTRA = {f.__name__: f for f in [
    auth_profile, profile_named_by_variable, profiles_path_variable, profiles_path_in_dotenv,
    profiles_path_in_prefect_toml, prefect_home_variable, dotenv_expansion,
    profile_without_url_refuses, empty_variable_hides_profile, unit_test_mode_ignores_profiles,
    unknown_profile_name, env_in_lower_and_mixed_case, env_both_spellings_lower_last,
    env_both_spellings_upper_last, lower_case_env_beats_dotenv, dotenv_both_spellings,
]}  # fmt: skip
DIFFERENTIAL = (
    [(name, [name]) for name in ORDER]
    + [(f"{a}>{b}", [b, a]) for a, b in PAIRS]
    + [(name, [name]) for name in EXTRA]
)


@pytest.mark.parametrize("case, writers", DIFFERENTIAL, ids=[c for c, _ in DIFFERENTIAL])
def test_same_url_and_key_as_prefect(
    case: str, writers: List[str], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
    stub: RecordingStub,
) -> None:
    pytest.importorskip("prefect")
    lay = Layout(tmp_path)
    for name in writers:
        (SOURCES.get(name) or EXTRA[name])(lay, stub.url(name), f"key-{name}")
    theirs = run_prefect(lay, stub)
    ours = run_ours(lay, monkeypatch, stub)
    if isinstance(ours, tuple):
        ours = ours[:1]  # both refused; the messages differ on purpose
    assert ours == theirs
    refusals = ("profile_without_url_refuses", "empty_variable_hides_profile",
                "unit_test_mode_ignores_profiles", "unknown_profile_name")
    if case in refusals:
        assert ours == ("ValueError",)
    else:
        assert ours == [("/" + writers[-1] + "/api/hello", _expected_auth(writers[-1]))]


def _expected_auth(name: str) -> str:
    if name == "auth_profile":
        import base64

        return "Basic " + base64.b64encode(b"admin:key-auth_profile").decode()
    return f"Bearer key-{name}"


@pytest.mark.parametrize("name, value", [
    ("PREFECT_API_REQUEST_TIMEOUT", "0"),
    ("PREFECT_CLIENT_RETRY_EXTRA_CODES", "200"),
    ("PREFECT_CLIENT_MAX_RETRIES", "1000"),
])  # fmt: skip
def test_bad_setting_is_refused_when_the_client_is_built(
    name: str, value: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
    stub: RecordingStub,
) -> None:
    """Before, these were accepted and then every call failed (or was retried in vain)."""
    lay = Layout(tmp_path)
    lay.write("~/.prefect/profiles.toml", profiles("p", p={name: value}))
    run_ours(lay, monkeypatch, stub)  # sets the environment and directory up
    stub.take()
    with pytest.raises(ValueError, match=f"{name} .*profile 'p' of .*profiles.toml"):
        SyncPrefectClient(stub.url("x"))
    with pytest.raises(ValueError, match=name):
        get_client()
    assert stub.take() == []


# ---- the local server: only when no source names a URL, and it says so -----------------


class FakeLocalServer:
    """Stands in for the embedded Prefect server: the stub plays its part."""

    auth_string = None

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    def check_connection(self, sock: object) -> Optional[str]:
        return None  # every connection goes ahead


def test_local_server_only_without_a_url_and_the_notice_says_why(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, stub: RecordingStub
) -> None:
    from orchestration_client import _local_server

    started: List[FakeLocalServer] = []
    told: List[str] = []  # what the notice will say about where a URL was looked for

    def start(missing: str, timeout: Optional[float] = None,
              settings: Optional[Dict[str, str]] = None) -> FakeLocalServer:
        told.append(missing)
        started.append(FakeLocalServer(stub.url("local")))
        return started[-1]

    monkeypatch.setattr(_local_server, "server_for_client", start)
    lay = Layout(tmp_path)
    run_ours(lay, monkeypatch, stub)  # no URL anywhere: Prefect's default profile applies
    assert len(started) == 1 and started[0].stopped
    path = lay.home / ".prefect" / "profiles.toml"
    assert told == [
        "no PREFECT_API_URL in environment, .env, prefect.toml, pyproject.toml or Prefect's "
        f"default profile 'ephemeral' ({path} does not exist)"
    ]
    # A URL in any source, or an explicit base_url, and no server is started.
    for source in ORDER:
        lay = Layout(tmp_path / source)
        SOURCES[source](lay, stub.url(source), "k")
        assert run_ours(lay, monkeypatch, stub) == [(f"/{source}/api/hello", "Bearer k")]
    with get_client(httpx_settings={"base_url": stub.url("explicit")}) as client:
        client.hello()
    assert len(started) == 1


def test_without_a_url_and_with_ephemeral_mode_off_the_error_says_where_it_looked(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, stub: RecordingStub
) -> None:
    lay = Layout(tmp_path)
    path = lay.write("~/.prefect/profiles.toml", profiles("team", team={"PREFECT_API_KEY": "k"}))
    outcome = run_ours(lay, monkeypatch, stub)
    assert isinstance(outcome, tuple) and outcome[0] == "ValueError"
    assert (
        "no PREFECT_API_URL in environment, .env, prefect.toml, pyproject.toml or profile "
        f"'team' of {path}; ephemeral mode is off"
    ) in outcome[1]
    lay.env["PREFECT_SERVER_EPHEMERAL_ENABLED"] = "false"
    lay.env["PREFECT_API_URL"] = ""
    outcome = run_ours(lay, monkeypatch, stub)
    assert isinstance(outcome, tuple)
    assert (
        "PREFECT_API_URL is empty (PREFECT_API_URL in the environment); ephemeral mode is off "
        "(PREFECT_SERVER_EPHEMERAL_ENABLED in the environment)"
    ) in outcome[1]


# ---- every supported setting, compared with Prefect's resolved settings -----------------

SETTINGS_PROBE = """
import json
from prefect.settings import get_current_settings
s = get_current_settings()
secret = lambda v: v.get_secret_value() if v is not None else None
print(json.dumps({
    "api_url": s.api.url, "api_key": secret(s.api.key), "auth_string": secret(s.api.auth_string),
    "request_timeout": s.api.request_timeout,
    "tls_insecure_skip_verify": s.api.tls_insecure_skip_verify,
    "ssl_cert_file": s.api.ssl_cert_file, "max_retries": s.client.max_retries,
    "retry_jitter_factor": s.client.retry_jitter_factor,
    "retry_extra_codes": sorted(s.client.retry_extra_codes),
    "csrf_support_enabled": s.client.csrf_support_enabled,
    "custom_headers": s.client.custom_headers, "cloud_api_url": s.cloud.api_url,
    "unit_test_mode": s.testing.unit_test_mode, "ephemeral_enabled": s.server.ephemeral.enabled,
    "ephemeral_startup_timeout": s.server.ephemeral.startup_timeout_seconds,
}))
"""


def every_setting_from_a_different_source(lay: Layout) -> None:
    lay.env.update(PREFECT_API_REQUEST_TIMEOUT="12", PREFECT_CLIENT_RETRY_EXTRA_CODES="500,504")
    lay.write(".env", "PREFECT_API_URL=http://dotenv/api\nPREFECT_CLIENT_MAX_RETRIES=3\n"
                      "PREFECT_API_REQUEST_TIMEOUT=99\n")
    lay.write("prefect.toml", """
        [api]
        tls_insecure_skip_verify = true
        key = "k-toml"
        [client]
        retry_jitter_factor = 0.4
        custom_headers = {X-A = "1"}
        [server.ephemeral]
        startup_timeout_seconds = 30
    """)
    lay.write("pyproject.toml", """
        [tool.prefect.client]
        csrf_support_enabled = false
        max_retries = 9
        [tool.prefect.cloud]
        api_url = "https://cloud.example/api"
    """)
    lay.write("~/.prefect/profiles.toml", profiles("p", p={
        "PREFECT_API_AUTH_STRING": "u:p", "PREFECT_API_SSL_CERT_FILE": "/ca.pem",
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false", "PREFECT_UNIT_TEST_MODE": "true",
        "PREFECT_API_KEY": "k-profile", "PREFECT_API_URL": "http://profile/api"}))


def every_setting_in_lower_or_mixed_case(lay: Layout) -> None:
    every_setting_from_the_profile(lay)
    lay.env.update({
        "prefect_api_url": "http://lower/api", "Prefect_Api_Key": "k-lower",
        "PREFECT_API_REQUEST_TIMEOUT": "7", "prefect_api_request_timeout": "8",
        "prefect_client_max_retries": "4", "PREFECT_CLIENT_MAX_RETRIES": "6",
        "prefect_client_retry_extra_codes": "503", "prefect_client_csrf_support_enabled": "1",
        "prefect_unit_test_mode": "false", "prefect_server_allow_ephemeral_mode": "false",
        "prefect_server_ephemeral_startup_timeout_seconds": "12",
        "prefect_cloud_api_url": "https://lower.example/api",
    })


def every_setting_from_the_profile(lay: Layout) -> None:
    lay.write("~/.prefect/profiles.toml", profiles("p", p={
        "PREFECT_API_URL": "http://profile/api", "PREFECT_API_KEY": "k",
        "PREFECT_API_AUTH_STRING": "u:p", "PREFECT_API_REQUEST_TIMEOUT": "5.5",
        "PREFECT_API_TLS_INSECURE_SKIP_VERIFY": "true", "PREFECT_API_SSL_CERT_FILE": "/ca.pem",
        "PREFECT_CLIENT_MAX_RETRIES": "2", "PREFECT_CLIENT_RETRY_JITTER_FACTOR": "0",
        "PREFECT_CLIENT_RETRY_EXTRA_CODES": "404,429", "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED": "no",
        "PREFECT_CLIENT_CUSTOM_HEADERS": r'{\"X-B\": \"2\"}',
        "PREFECT_CLOUD_API_URL": "https://cloud.example/api", "PREFECT_TESTING_UNIT_TEST_MODE": "1",
        "PREFECT_SERVER_EPHEMERAL_ENABLED": "true",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "45"}))


@pytest.mark.parametrize("writer", [every_setting_from_a_different_source,
                                    every_setting_from_the_profile,
                                    every_setting_in_lower_or_mixed_case])
def test_every_setting_resolves_as_in_prefect(
    writer: object, tmp_path: pathlib.Path
) -> None:
    pytest.importorskip("prefect")
    if prefect_is_older():  # e.g. PREFECT_CLIENT_CUSTOM_HEADERS is newer than Prefect 3.4
        pytest.skip(f"resolves as Prefect 3.9 does; Prefect {installed_prefect()} is installed")
    from orchestration_client._settings._load import load_settings

    lay = Layout(tmp_path)
    writer(lay)  # type: ignore[operator]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **lay.env}
    done = subprocess.run([sys.executable, "-c", SETTINGS_PROBE], cwd=lay.cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    ours = msgspec_to_dict(load_settings(lay.env, cwd=str(lay.cwd)))
    assert ours == theirs


def msgspec_to_dict(settings: object) -> Dict[str, object]:
    import msgspec

    values = msgspec.to_builtins(settings)
    values["retry_extra_codes"] = sorted(values["retry_extra_codes"])
    # Not Prefect settings: attribution and where values came from; the 500 time limit.
    for name in ("attribution_headers", "origins", "profile", "retry_500_seconds"):
        del values[name]
    return values  # type: ignore[no-any-return]


def test_what_the_prefect_cli_writes_is_read(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, stub: RecordingStub
) -> None:
    """`prefect config set` and `prefect profile use`, run for real, then our get_client()."""
    pytest.importorskip("prefect")
    cli = os.path.join(os.path.dirname(sys.executable), "prefect")
    lay = Layout(tmp_path)

    def prefect(*args: str) -> None:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **lay.env}
        done = subprocess.run([cli, *args], cwd=lay.cwd, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    prefect("config", "set", f"PREFECT_API_URL={stub.url('first')}", "PREFECT_API_KEY=k1")
    assert run_ours(lay, monkeypatch, stub) == [("/first/api/hello", "Bearer k1")]
    prefect("profile", "create", "team")
    prefect("--profile", "team", "config", "set", f"PREFECT_API_URL={stub.url('team')}")
    prefect("profile", "use", "team")
    assert stub.take() == [("/team/api/health", None)]  # `profile use` checks the server
    assert run_ours(lay, monkeypatch, stub) == [("/team/api/hello", None)]
