"""Reading the PREFECT_* settings: values, sources, precedence, and bad values."""

import importlib.metadata
import logging
import os
import pathlib
import textwrap
from typing import Any, Dict, Mapping, Optional

import pytest

from orchestration_client._settings import _files as _config_files
from orchestration_client._settings import _load as _settings_module
from orchestration_client._settings._load import Settings
from orchestration_client._settings._load import load_settings as _load_settings


@pytest.fixture(autouse=True)
def isolated(tmp_path: pathlib.Path) -> None:
    """Every test gets an empty home and working directory."""
    for part in ("home/.prefect", "cwd"):
        (tmp_path / part).mkdir(parents=True)
    global ROOT
    ROOT = tmp_path


ROOT = pathlib.Path("/nonexistent")


def write(relative: str, text: str) -> pathlib.Path:
    """``~/...`` under the test's home directory, anything else in its working directory."""
    path = ROOT / "home" / relative[2:] if relative.startswith("~/") else ROOT / "cwd" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def load_settings(env: Optional[Mapping[str, str]] = None) -> Settings:
    return _load_settings({"HOME": str(ROOT / "home"), **(env or {})}, cwd=str(ROOT / "cwd"))


def test_defaults_match_prefect() -> None:
    settings = load_settings({"PREFECT_TESTING_UNIT_TEST_MODE": "1"})  # no profile at all
    assert settings == Settings(
        unit_test_mode=True,
        origins={"unit_test_mode": "PREFECT_TESTING_UNIT_TEST_MODE in the environment"},
        profile="no profile (PREFECT_TESTING_UNIT_TEST_MODE is set: Prefect's test mode)",
    )
    assert settings.request_timeout == 60.0
    assert settings.max_retries == 5 and settings.retry_jitter_factor == 0.2
    assert settings.retry_extra_codes == frozenset()
    assert settings.csrf_support_enabled is True
    assert settings.cloud_api_url == "https://api.prefect.cloud/api"
    assert settings.api_url is None and settings.ephemeral_enabled is None


def test_without_a_profiles_file_prefects_default_profile_turns_ephemeral_mode_on() -> None:
    settings = load_settings()
    assert settings.ephemeral_enabled is True
    assert settings.profile.startswith("Prefect's default profile 'ephemeral'")
    assert "profiles.toml does not exist" in settings.profile


def test_every_variable_is_read() -> None:
    settings = load_settings({
        "PREFECT_API_URL": " http://h:1/api ",
        "PREFECT_API_KEY": "key",
        "PREFECT_API_AUTH_STRING": "u:p",
        "PREFECT_API_REQUEST_TIMEOUT": "7.5",
        "PREFECT_API_TLS_INSECURE_SKIP_VERIFY": "yes",
        "PREFECT_API_SSL_CERT_FILE": "/ca.pem",
        "PREFECT_CLIENT_MAX_RETRIES": "2",
        "PREFECT_CLIENT_RETRY_JITTER_FACTOR": "0",
        "PREFECT_CLIENT_RETRY_EXTRA_CODES": "404, 500",
        "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED": "off",
        "PREFECT_CLIENT_CUSTOM_HEADERS": '{"X-Team": "data"}',
        "PREFECT_CLOUD_API_URL": "https://cloud.example/api",
        "PREFECT_TESTING_UNIT_TEST_MODE": "1",
        "PREFECT_SERVER_EPHEMERAL_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "45",
        "PREFECT__FLOW_NAME": " etl ",
        "PREFECT__WORKER_ID": "",
    })  # fmt: skip
    assert settings.api_url == "http://h:1/api"
    assert (settings.api_key, settings.auth_string) == ("key", "u:p")
    assert settings.request_timeout == 7.5 and settings.tls_insecure_skip_verify is True
    assert settings.ssl_cert_file == "/ca.pem"
    assert settings.max_retries == 2 and settings.retry_jitter_factor == 0.0
    assert settings.retry_extra_codes == {404, 500}
    assert settings.csrf_support_enabled is False
    assert settings.custom_headers == {"X-Team": "data"}
    assert settings.cloud_api_url == "https://cloud.example/api"
    assert settings.unit_test_mode is True and settings.ephemeral_enabled is False
    assert settings.ephemeral_startup_timeout == 45.0
    assert settings.attribution_headers == {"X-Prefect-Flow-Name": "etl"}


def test_ssl_cert_file_falls_back_to_ssl_cert_file() -> None:
    assert load_settings({"SSL_CERT_FILE": "/etc/ca.pem"}).ssl_cert_file == "/etc/ca.pem"


def test_json_list_form_of_extra_codes() -> None:
    assert load_settings({"PREFECT_CLIENT_RETRY_EXTRA_CODES": "[500]"}).retry_extra_codes == {500}


@pytest.mark.parametrize("name, raw, message", [
    ("PREFECT_API_REQUEST_TIMEOUT", "soon", "must be a number"),
    ("PREFECT_API_REQUEST_TIMEOUT", "-1", "number of seconds > 0"),
    ("PREFECT_API_REQUEST_TIMEOUT", "inf", "number of seconds > 0"),
    ("PREFECT_API_REQUEST_TIMEOUT", "nan", "number of seconds > 0"),
    # Prefect accepts these, and then every call fails or never ends:
    ("PREFECT_API_REQUEST_TIMEOUT", "0", "number of seconds > 0"),
    ("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "0", "> 0"),
    ("PREFECT_CLIENT_MAX_RETRIES", "2.5", "whole number"),
    ("PREFECT_CLIENT_MAX_RETRIES", "-1", "between 0 and 10"),
    ("PREFECT_CLIENT_MAX_RETRIES", "1000", "between 0 and 10"),
    ("PREFECT_CLIENT_RETRY_JITTER_FACTOR", "-0.1", "between 0 and 1"),
    ("PREFECT_CLIENT_RETRY_JITTER_FACTOR", "1e300", "between 0 and 1"),
    ("PREFECT_CLIENT_RETRY_EXTRA_CODES", "404,abc", "HTTP status codes"),
    ("PREFECT_CLIENT_RETRY_EXTRA_CODES", "99", "HTTP status codes"),
    ("PREFECT_CLIENT_RETRY_EXTRA_CODES", "200", "not an error status"),
    ("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "maybe", "true or false"),
    ("PREFECT_CLIENT_CUSTOM_HEADERS", "{not json", "JSON object"),
    ("PREFECT_CLIENT_CUSTOM_HEADERS", '{"a": 1}', "string values"),
    ("PREFECT_CLIENT_CUSTOM_HEADERS", '{"X Team": "a"}', "invalid header name"),
    ("PREFECT_CLIENT_CUSTOM_HEADERS", '{"X-Team": "a\\nb"}', "line break"),
    ("PREFECT_API_URL", "127.0.0.1:4200/api", "must start with http"),
    ("PREFECT_CLOUD_API_URL", "api.prefect.cloud", "must start with http"),
    ("PREFECT_API_KEY", "pnu_a\nb", "line break"),
])  # fmt: skip
def test_malformed_values_name_the_variable(name: str, raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        load_settings({name: raw})
    assert name in str(caught.value)
    assert f"(from {name} in the environment)" in str(caught.value)


def test_secrets_are_not_in_repr() -> None:
    settings = load_settings(
        {"PREFECT_API_KEY": "pnu_secret", "PREFECT_API_AUTH_STRING": "u:hunter2"}
    )
    assert "pnu_secret" not in repr(settings) and "hunter2" not in repr(settings)
    assert "api_key='********'" in repr(settings)


def test_non_ascii_values_are_accepted_and_sent_as_utf8_by_the_transport() -> None:
    settings = load_settings(
        {"PREFECT_API_KEY": "pnu_\u30c7", "PREFECT_CLIENT_CUSTOM_HEADERS": '{"X-Team": "\u30c7"}'}
    )
    assert settings.api_key == "pnu_\u30c7" and settings.custom_headers == {"X-Team": "\u30c7"}


def test_secrets_in_bad_values_are_not_echoed() -> None:
    with pytest.raises(ValueError) as caught:
        load_settings({"PREFECT_API_URL": "admin:hunter2@prefect.internal/api"})
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ValueError) as caught:
        load_settings({"PREFECT_API_KEY": "pnu_secret\r\nX-Evil: 1"})
    assert "pnu_secret" not in str(caught.value)


# ---- sources ---------------------------------------------------------------------------


def test_each_file_supplies_every_setting() -> None:
    """The key shapes Prefect accepts: nested tables in prefect.toml and [tool.prefect],
    variable names in .env (any case) and in profiles."""
    write("prefect.toml", """
        [api]
        url = "http://toml/api"
        request_timeout = 7
        tls_insecure_skip_verify = true
        [client]
        max_retries = 2
        retry_jitter_factor = 0.5
        retry_extra_codes = [500, "404"]
        csrf_support_enabled = "off"
        custom_headers = {X-Team = "data"}
        [cloud]
        api_url = "https://cloud.example/api"
        [server.ephemeral]
        enabled = false
        startup_timeout_seconds = 45
        [testing]
        unit_test_mode = 1
    """)
    settings = load_settings()
    assert (settings.api_url, settings.request_timeout) == ("http://toml/api", 7.0)
    assert settings.tls_insecure_skip_verify is True and settings.max_retries == 2
    assert settings.retry_jitter_factor == 0.5 and settings.retry_extra_codes == {404, 500}
    assert settings.csrf_support_enabled is False
    assert settings.custom_headers == {"X-Team": "data"}
    assert settings.cloud_api_url == "https://cloud.example/api"
    assert settings.ephemeral_enabled is False and settings.ephemeral_startup_timeout == 45
    assert settings.unit_test_mode is True
    assert settings.origins["request_timeout"].endswith("prefect.toml, [api] request_timeout")


def test_flat_variable_names_in_prefect_toml_are_not_settings() -> None:
    """Prefect reads only nested keys from prefect.toml; a flat name is ignored there."""
    write("prefect.toml", 'PREFECT_API_URL = "http://flat/api"\n')
    assert load_settings().api_url is None


def test_pyproject_tool_prefect_and_json_string_headers() -> None:
    write("pyproject.toml", """
        [tool.prefect.api]
        key = "pk"
        [tool.prefect.client]
        custom_headers = '{"X-A": "1"}'
    """)
    settings = load_settings()
    assert settings.api_key == "pk" and settings.custom_headers == {"X-A": "1"}


def test_profile_names_and_aliases() -> None:
    write("~/.prefect/profiles.toml", """
        active = "dev"
        [profiles.dev]
        PREFECT_API_URL = "http://dev/api"
        PREFECT_SERVER_ALLOW_EPHEMERAL_MODE = "true"
        PREFECT_UNIT_TEST_MODE = "true"
        [profiles.prod]
        PREFECT_API_URL = "http://prod/api"
    """)
    settings = load_settings()
    assert settings.api_url == "http://dev/api"
    assert settings.ephemeral_enabled is True and settings.unit_test_mode is True
    assert settings.profile == f"profile 'dev' of {ROOT}/home/.prefect/profiles.toml"
    assert load_settings({"PREFECT_PROFILE": "prod"}).api_url == "http://prod/api"
    # An empty PREFECT_PROFILE means the file's active profile, as in Prefect.
    assert load_settings({"PREFECT_PROFILE": ""}).api_url == "http://dev/api"


def test_unknown_profile_falls_back_to_prefects_default_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    write("~/.prefect/profiles.toml", 'active = "gone"\n[profiles.dev]\n')
    with caplog.at_level(logging.WARNING, "orchestration_client"):
        settings = load_settings()
    assert settings.api_url is None and settings.ephemeral_enabled is True
    assert "active = 'gone': no such profile in" in settings.profile
    assert settings.profile in caplog.text


@pytest.mark.parametrize("where", ["env", "dotenv", "prefect.toml", "pyproject", "home"])
def test_profiles_file_location(where: str) -> None:
    path = write("~/elsewhere/profiles.toml", 'active = "x"\n[profiles.x]\nPREFECT_API_KEY = "k"\n')
    write("~/.prefect/profiles.toml", 'active = "y"\n[profiles.y]\nPREFECT_API_KEY = "default"\n')
    env: Dict[str, str] = {}
    if where == "env":
        env["PREFECT_PROFILES_PATH"] = str(path)
    elif where == "dotenv":
        write(".env", f"PREFECT_PROFILES_PATH={path}\n")
    elif where == "prefect.toml":
        write("prefect.toml", f'profiles_path = "{path}"\n')
    elif where == "pyproject":
        write("pyproject.toml", f'[tool.prefect]\nprofiles_path = "{path}"\n')
    else:
        env["PREFECT_HOME"] = str(path.parent)
    assert load_settings(env).api_key == "k"


def test_test_mode_ignores_profiles_as_prefect_does() -> None:
    write("~/.prefect/profiles.toml", 'active = "x"\n[profiles.x]\nPREFECT_API_URL = "http://x/api"\n')
    # Prefect checks only that the variable is non-empty, so even "0" means test mode.
    settings = load_settings({"PREFECT_TEST_MODE": "0"})
    assert settings.api_url is None and settings.ephemeral_enabled is None


def test_empty_value_hides_lower_sources() -> None:
    write("prefect.toml", '[api]\nurl = "http://toml/api"\nrequest_timeout = 5\n')
    settings = load_settings({"PREFECT_API_URL": "", "PREFECT_API_REQUEST_TIMEOUT": " "})
    assert settings.api_url is None and settings.request_timeout == 60.0
    assert settings.origins["api_url"] == "PREFECT_API_URL in the environment"


def test_dotenv_dialect() -> None:
    write(".env", r"""
        # a comment
        export PREFECT_API_URL="http://${HOST:-fallback}/api"   # trailing comment
        prefect_api_key='single \' quoted ${HOST}'
        PREFECT_API_AUTH_STRING = u:${NAME}
        NAME=later
        PREFECT_CLIENT_CUSTOM_HEADERS='{"X-A": "1 # not a comment"}'
        PREFECT_CLOUD_API_URL= # empty value, then a comment
        PREFECT_CLIENT_RETRY_EXTRA_CODES
    """)
    settings = load_settings({"HOST": "h"})
    assert settings.api_url == "http://h/api"
    assert settings.api_key == "single ' quoted h"
    assert settings.auth_string == "u:"  # NAME is defined only after its use
    assert settings.custom_headers == {"X-A": "1 # not a comment"}
    assert settings.cloud_api_url == "https://api.prefect.cloud/api"
    assert settings.retry_extra_codes == frozenset()


@pytest.mark.parametrize("relative, text, where", [
    ("prefect.toml", "[api]\nurl = http://nope/api\n", "line 2"),
    ("pyproject.toml", "[project]\nname = 'x'\n[tool.prefect\n", "line 3"),
    ("~/.prefect/profiles.toml", 'active = "x"\n\n[profiles.x]\nPREFECT_API_URL = "a\n', "line 4"),
    (".env", "PREFECT_API_URL=http://x/api\nPREFECT_API_KEY=\"unterminated\n", "line 2"),
    (".env", "GOOD=1\n\nnot an assignment\n", "line 3"),
])  # fmt: skip
def test_malformed_files_name_the_file_and_line(relative: str, text: str, where: str) -> None:
    path = write(relative, text)
    with pytest.raises(_config_files.ConfigFileError, match="line") as caught:
        load_settings()
    assert str(caught.value).startswith(str(path)) and where in str(caught.value)


def test_bad_value_in_a_file_names_the_variable_and_the_file() -> None:
    path = write("prefect.toml", "[api]\nrequest_timeout = 0\n")
    with pytest.raises(ValueError) as caught:
        load_settings()
    assert str(caught.value) == (
        "PREFECT_API_REQUEST_TIMEOUT must be a number of seconds > 0 and at most 3.1536e+07, got 0 "
        f"(from {path}, [api] request_timeout)"
    )
    profile = write("~/.prefect/profiles.toml", 'active = "p"\n[profiles.p]\nPREFECT_CLIENT_MAX_RETRIES = "x"\n')
    path.unlink()
    with pytest.raises(ValueError, match=f"PREFECT_CLIENT_MAX_RETRIES in profile 'p' of {profile}"):
        load_settings()


def test_files_are_parsed_once_and_again_when_they_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list = []  # type: ignore[type-arg]
    real = _config_files._parse_toml

    def counting(text: str, path: str) -> Dict[str, Any]:
        parsed.append(path)
        return real(text, path)

    monkeypatch.setattr(_config_files, "_parse_toml", counting)
    path = write("prefect.toml", '[api]\nurl = "http://one/api"\n')
    assert [load_settings().api_url for _ in range(3)] == ["http://one/api"] * 3
    assert parsed == [str(path)]
    path.write_text('[api]\nurl = "http://two/api"\n')
    os.utime(path, ns=(1, 1))  # a different modification time, whatever the clock says
    assert load_settings().api_url == "http://two/api"
    assert parsed == [str(path)] * 2


DOTENV_CORPUS = r"""
# comment
  A=1
export B = two words   # comment
C="multi
line \"quoted\" \t tab"
'D'='single ${A} \' \n'
E=#not-a-comment
F= # a comment
G
H=${A}-${MISSING:-dflt}-${B}
I=a#b
J=  spaced  value
K="x" # after quotes
L=${HOME_NOT_SET:-}
"""


def test_dotenv_parser_matches_python_dotenv(monkeypatch: pytest.MonkeyPatch) -> None:
    """The .env dialect is python-dotenv's, which Prefect's settings use."""
    dotenv = pytest.importorskip("dotenv")
    release = importlib.metadata.version("python-dotenv")
    if tuple(int(part) for part in release.split(".")[:3]) < (1, 2, 4):
        # Python 3.9 gets 1.2.1, which reads "F= # a comment" as that text, not as empty.
        pytest.skip(f"the dialect followed is python-dotenv 1.2.4's; {release} is installed")
    path = write(".env", DOTENV_CORPUS)
    monkeypatch.chdir(path.parent)
    assert _config_files.read_dotenv(str(path), dict(os.environ)) == dict(
        dotenv.dotenv_values(str(path))
    )


def test_a_removed_working_directory_has_no_settings_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gone = ROOT / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    monkeypatch.setattr(_settings_module, "START_DIRECTORY", _settings_module._start_directory())
    assert _settings_module.START_DIRECTORY == ""
    assert _load_settings({"HOME": str(ROOT / "home")}).api_url is None


def test_files_are_read_where_the_package_was_imported_not_after_a_chdir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    """Prefect reads .env/prefect.toml/pyproject.toml once, at import; a later os.chdir
    into another project must not silently switch the server."""
    started, other = tmp_path / "started", tmp_path / "other"
    for folder, port in ((started, 1111), (other, 2222)):
        folder.mkdir()
        (folder / "prefect.toml").write_text(f'[api]\nurl = "http://127.0.0.1:{port}/api"\n')
    monkeypatch.setattr(_settings_module, "START_DIRECTORY", str(started))
    monkeypatch.chdir(other)
    settings = _load_settings({"HOME": str(ROOT / "home")})
    assert settings.api_url == "http://127.0.0.1:1111/api"
