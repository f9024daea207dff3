"""The shared local server (``get_client()`` with no URL), against real Prefect servers
started by real client processes: reuse across processes, one server for concurrent
starters, the command line, idle stop, replacing dead, foreign and mismatched servers, the
credential (401 without it, never shown, never sent to an unverified program), file modes.

Every home comes from the ``local_home`` fixture, which stops whatever was started in it."""

import base64
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Callable, Dict, Iterator, List, Optional

import pytest
import requests
from support.local_servers import servers_under

pytestmark = pytest.mark.integration

Home = Callable[[str], pathlib.Path]

CLIENT = """
import json, os
from orchestration_client import get_client
with get_client() as client:
    greeting = client.hello().json()
print(json.dumps({"url": client.api_url, "hello": greeting}))
"""


def environment(home: pathlib.Path, **extra: str) -> Dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("PREFECT_", "ORCHESTRATION_CLIENT_"))}
    return {**clean, "PREFECT_HOME": str(home), "HOME": str(home.parent), **extra}


def run(home: pathlib.Path, code: str = CLIENT, timeout: float = 180,
        **extra: str) -> "subprocess.CompletedProcess[str]":
    result = subprocess.run([sys.executable, "-c", code], env=environment(home, **extra),
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def cli(home: pathlib.Path, *args: str, **extra: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "orchestration_client", "server", *args],
                          env=environment(home, **extra), capture_output=True, text=True,
                          timeout=180)


def files(home: pathlib.Path) -> pathlib.Path:
    return home / "orchestration_client"


def record(home: pathlib.Path) -> Dict[str, object]:
    value: Dict[str, object] = json.loads((files(home) / "server.json").read_text())
    return value


def credential(home: pathlib.Path) -> str:
    return str(json.loads((files(home) / "credential").read_text())["auth_string"])


def alive(pid: int) -> bool:
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def basic(secret: str) -> Dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(secret.encode()).decode()}


def sigkill(pid: int) -> None:
    os.killpg(pid, signal.SIGKILL)
    assert gone_within(pid, 15)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, template_db: pathlib.Path) -> Iterator[pathlib.Path]:
    """One shared server for the read-only checks below."""
    from support.local_servers import stop_servers_under

    root = tmp_path_factory.mktemp("running")
    home = root / "home"
    home.mkdir()
    (home / "prefect.db").write_bytes(template_db.read_bytes())
    run(home)
    yield home
    stop_servers_under(root)


# ---- reuse, concurrency, lifetime -------------------------------------------------------------


def test_later_processes_reuse_the_server_which_outlives_them(local_home: Home) -> None:
    home = local_home("home")
    files(home).mkdir(mode=0o755)  # made by hand, too loose: tightened
    files(home).chmod(0o755)
    first = run(home)
    assert files(home).stat().st_mode & 0o777 == 0o700
    url = json.loads(first.stdout)["url"]
    pid = int(record(home)["pid"])  # type: ignore[call-overload]
    assert re.search(rf"started a local Prefect server at {re.escape(url[:-1])} in [\d.]+ s "
                     rf"\(pid {pid}, data in {re.escape(str(home))}\)", first.stderr)
    stop_hint = f"to stop it now: PREFECT_HOME={home} python -m orchestration_client server stop"
    assert stop_hint in first.stderr
    assert "no PREFECT_API_URL in environment, .env, prefect.toml" in first.stderr
    # The starting process has exited; the server has not, and it is nobody's child.
    assert alive(pid)
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    assert int(stat[3]) == pid, "leads a session of its own (no terminal, no caller's group)"
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
    assert os.readlink(f"/proc/{pid}/fd/2") == str(files(home) / "server.log")
    for _ in range(2):
        later = run(home)
        assert json.loads(later.stdout) == {"url": url, "hello": "👋"}
        assert f"using the local Prefect server at {url[:-1]} (pid {pid}," in later.stderr
        assert later.stderr.count("orchestration_client:") == 1
    assert [p for p, _ in servers_under(home)] == [pid]


def test_six_processes_starting_at_once_start_one_server(local_home: Home) -> None:
    home = local_home("home")
    code = CLIENT + "print(json.dumps(json.load(open(os.environ['PREFECT_HOME'] + '/orchestration_client/server.json'))))\n"
    processes = [subprocess.Popen([sys.executable, "-c", code], env=environment(home),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(6)]
    outputs = [p.communicate(timeout=240) for p in processes]
    assert all(p.returncode == 0 for p in processes), [err[-2000:] for _, err in outputs]
    urls = {json.loads(out.splitlines()[0])["url"] for out, _ in outputs}
    pids = {json.loads(out.splitlines()[1])["pid"] for out, _ in outputs}
    assert len(urls) == 1 and len(pids) == 1
    assert [p for p, _ in servers_under(home)] == list(pids)
    notices = [err for _, err in outputs]
    assert sum("started a local Prefect server" in n for n in notices) == 1
    assert sum("using the local Prefect server" in n for n in notices) == 5


def test_the_command_line_starts_shows_and_stops_it(local_home: Home) -> None:
    home = local_home("home")
    none = cli(home, "status")
    assert none.returncode == 1 and f"no local Prefect server for PREFECT_HOME={home}" in none.stdout
    started = cli(home, "start")
    assert started.returncode == 0, started.stderr
    assert re.match(r"started http://127\.0\.0\.1:\d+/api \(pid \d+; stops after 600 s", started.stdout)
    again = cli(home, "start")
    assert again.returncode == 0 and again.stdout.startswith("already running: http://127.0.0.1:")
    pid, url = int(record(home)["pid"]), str(record(home)["url"])  # type: ignore[call-overload]
    shown = cli(home, "status")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    for line in (f"url:            {url}", f"pid:            {pid}", "Prefect:        3.",
                 "idle timeout:   600 s", f"log:            {files(home) / 'server.log'}",
                 "stop it with:   PREFECT_HOME="):
        assert line in shown.stdout, shown.stdout
    secret = credential(home)
    assert secret not in shown.stdout + shown.stderr + started.stdout + again.stdout
    assert secret.split(":")[1] not in shown.stdout
    stopped = cli(home, "stop")
    assert stopped.returncode == 0 and stopped.stdout.strip() == (
        f"stopped the local Prefect server at {url} (pid {pid})")
    assert not alive(pid) and not (files(home) / "server.json").exists()
    assert not (files(home) / "credential").exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/health", timeout=2)
    twice = cli(home, "stop")
    assert twice.returncode == 0
    assert twice.stdout.strip() == f"no local Prefect server was running for PREFECT_HOME={home}"
    assert cli(home, "status").returncode == 1


def test_stop_works_with_only_home_set(local_home: Home) -> None:
    """What a fresh user runs after the README's first command: HOME and nothing else."""
    user = local_home("user")
    prefect_home = user / ".prefect"
    prefect_home.mkdir()
    (user / "prefect.db").rename(prefect_home / "prefect.db")
    clean = {k: v for k, v in environment(user).items() if k != "PREFECT_HOME"}
    clean["HOME"] = str(user)
    subprocess.run([sys.executable, "-c", CLIENT], env=clean, check=True, capture_output=True,
                   timeout=180)
    pid = int(record(prefect_home)["pid"])  # type: ignore[call-overload]
    stopped = subprocess.run([sys.executable, "-m", "orchestration_client", "server", "stop"],
                             env=clean, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0 and f"(pid {pid})" in stopped.stdout
    assert gone_within(pid, 5)


def test_an_idle_server_stops_by_itself_but_not_while_a_client_is_open(local_home: Home) -> None:
    home = local_home("home")
    idle = {"ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT": "1"}
    holder = """
import sys, time
from orchestration_client import get_client
with get_client() as client:
    client.hello()
    print("ready", flush=True)
    time.sleep(5)  # idle for five times the timeout, with the client open
    print(client.hello().json(), flush=True)
"""
    process = subprocess.Popen([sys.executable, "-c", holder], env=environment(home, **idle),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    pid = int(record(home)["pid"])  # type: ignore[call-overload]
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0 and out == "👋\n", err
    assert alive(pid), "the server stopped under an open client"
    assert "stops after 1 s with no request and no open client" in err
    assert gone_within(pid, 60), "the idle server did not stop"
    assert not (files(home) / "server.json").exists()
    assert not (files(home) / "credential").exists()
    log = (files(home) / "server.log").read_text()
    assert re.search(r"no request for \d+ s and no client open: stopping", log), log
    assert cli(home, "status").returncode == 1


# ---- replacing what cannot be used -------------------------------------------------------------


def test_a_killed_server_is_replaced(local_home: Home) -> None:
    home = local_home("home")
    run(home)
    old = record(home)
    sigkill(int(old["pid"]))  # type: ignore[call-overload]
    assert (files(home) / "server.json").exists(), "SIGKILL leaves the record behind"
    assert cli(home, "status").returncode == 1
    again = run(home)
    new = record(home)
    assert new["pid"] != old["pid"] and new["id"] != old["id"]
    assert "started a local Prefect server" in again.stderr


def test_another_prefect_version_is_replaced(local_home: Home) -> None:
    home = local_home("home")
    run(home)
    old = record(home)
    changed = dict(old, prefect_version="3.0.0")
    path = files(home) / "server.json"
    path.write_text(json.dumps(changed))  # keeps mode 0600
    again = run(home, code="import logging; logging.basicConfig(level=logging.INFO)\n" + CLIENT)
    assert (f"replacing the local Prefect server at {old['url']}: it runs Prefect 3.0.0 and "
            "Prefect 3.") in again.stderr
    assert gone_within(int(old["pid"]), 30)  # type: ignore[call-overload]
    assert record(home)["pid"] != old["pid"]


def test_a_credential_others_could_read_gets_a_new_server(local_home: Home) -> None:
    home = local_home("home")
    run(home)
    old = record(home)
    (files(home) / "credential").chmod(0o644)
    run(home)
    assert gone_within(int(old["pid"]), 30)  # type: ignore[call-overload]
    assert record(home)["pid"] != old["pid"]
    assert (files(home) / "credential").stat().st_mode & 0o777 == 0o600


class ForeignProgram:
    """A plain HTTP listener on 127.0.0.1:``port`` that answers 200 to everything and keeps
    every byte it was sent."""

    def __init__(self, port: int) -> None:
        self.received: List[bytes] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 90  # a killed server's connections may hold it a while
        while True:
            try:
                self.sock.bind(("127.0.0.1", port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.waited = 90 - (deadline - time.monotonic())
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close"
                                 b"\r\n\r\n{}")
                except OSError:
                    pass
                self.received.append(data)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)

    def saw(self, secret: str) -> bool:
        everything = b"".join(self.received)
        encoded = base64.b64encode(secret.encode())
        return b"authorization" in everything.lower() or secret.encode() in everything or \
            encoded in everything


def test_a_program_on_the_recorded_port_of_a_dead_server_never_gets_the_credential(
    local_home: Home,
) -> None:
    home = local_home("home")
    run(home)
    old, secret = record(home), credential(home)
    sigkill(int(old["pid"]))  # type: ignore[call-overload]
    foreign = ForeignProgram(int(old["port"]))  # type: ignore[call-overload]
    try:
        again = run(home)
        assert json.loads(again.stdout)["url"] != f"{old['url']}/"
        assert record(home)["port"] != old["port"]
        assert not foreign.saw(secret) and not foreign.saw(credential(home))
        assert foreign.received == [], "nothing at all is sent to an unverified program"
    finally:
        foreign.close()


def test_a_record_pointing_at_a_foreign_port_is_not_believed(
    local_home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record's pid is our live server, but the port it names is another program's.
    On Linux the socket table shows the pid does not own it; elsewhere (forced here: ps for
    the process, then the challenge) the program gets a nonce, never the credential."""
    from orchestration_client._local_server import _files, _identity, _shared

    home = local_home("home")
    run(home)
    for check in ("linux-socket-table", "challenge"):
        original, secret = record(home), credential(home)
        foreign = ForeignProgram(0)
        port = foreign.sock.getsockname()[1]
        forged = dict(original, port=port, url=f"http://127.0.0.1:{port}/api")
        _files.write_private(str(files(home) / "server.json"), json.dumps(forged))
        if check == "challenge":
            monkeypatch.setattr(_identity, "_LINUX", False)
        try:
            server = _shared.connect(str(home), 600, 60)
            server.stop()
            assert server.record.pid != original["pid"] and server.record.port != port, check
            assert gone_within(int(original["pid"]), 30)  # type: ignore[call-overload]
            assert not foreign.saw(secret) and not foreign.saw(server.auth_string or ""), check
            if check == "challenge":
                assert foreign.received, "challenged (once before and once under the start lock)"
                assert all(r.startswith(b"GET /orchestration_client/proof?nonce=")
                           for r in foreign.received)
            else:
                assert foreign.received == []
        finally:
            foreign.close()


def test_the_challenge_is_answered_by_our_server_only_for_its_own_port(running: pathlib.Path) -> None:
    from orchestration_client._local_server import _identity

    port, secret = int(record(running)["port"]), credential(running)  # type: ignore[call-overload]
    assert _identity.proves_credential(port, secret)
    assert not _identity.proves_credential(port, secret + "x")
    nonce = "ab" * 32
    answer = requests.get(f"http://127.0.0.1:{port}/orchestration_client/proof",
                          params={"nonce": nonce}, timeout=10).text
    assert answer == _identity.proof(secret, port, nonce) != _identity.proof(secret, port + 1, nonce)


# ---- the credential ---------------------------------------------------------------------------------


def test_where_proc_hides_the_sockets_the_challenge_decides(
    running: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some sandboxes show no socket table or descriptors: the server is then challenged,
    proves itself, and is used (not replaced)."""
    from orchestration_client._local_server import _identity, _shared

    monkeypatch.setattr(_identity, "_socket_inodes", lambda pid: None)
    assert _identity.owns_port(int(record(running)["pid"]), int(record(running)["port"])) is None  # type: ignore[call-overload]
    server = _shared.connect(str(running), 600, 60)
    server.stop()
    assert server.record.pid == record(running)["pid"] and server.started_in is None


def test_requests_without_the_credential_get_401(running: pathlib.Path) -> None:
    url, secret = str(record(running)["url"]), credential(running)
    user, password = secret.split(":", 1)
    for method, path in [("GET", "/health"), ("GET", "/ready"), ("GET", "/hello"),
                         ("POST", "/task_runs/filter"), ("GET", "/admin/version"),
                         ("GET", "/variables/name/x-health"), ("GET", "/csrf-token?client=x")]:
        for headers in [{}, basic(secret + "x"), basic(f"{user}:"), {"Authorization": f"Bearer {secret}"},
                        {"Authorization": f"Basic {secret}"}, {"Authorization": "Basic !!!"}]:
            reply = requests.request(method, url + path, headers=headers, json={}, timeout=10)
            assert reply.status_code == 401, (method, path, headers, reply.status_code)
    assert requests.get(url + "/hello", headers=basic(secret), timeout=10).json() == "👋"
    assert requests.get(url + "/hello", auth=(user, password), timeout=10).status_code == 200
    # A websocket without the credential is closed before it is accepted (HTTP 403).
    with socket.create_connection(("127.0.0.1", int(record(running)["port"])), timeout=10) as sock:  # type: ignore[call-overload]
        sock.sendall(b"GET /api/events/in HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 403")


def test_the_credential_never_shows_in_logs_reprs_errors_or_status(running: pathlib.Path) -> None:
    secret = credential(running)
    code = """
import logging, uuid
logging.basicConfig(level=logging.DEBUG)
from orchestration_client import get_client
from orchestration_client.exceptions import ObjectNotFound
with get_client() as client:
    print(repr(client), repr(client._server), repr(client._transport))
    try:
        client.read_task_run(uuid.uuid4())
    except ObjectNotFound as exc:
        print("error:", exc, repr(exc))
"""
    result = run(running, code=code)
    status = cli(running, "status")
    log = (files(running) / "server.log").read_text()
    assert "error: " in result.stdout and "DEBUG" in result.stderr
    encoded = base64.b64encode(secret.encode()).decode()
    for text in (result.stdout, result.stderr, status.stdout, status.stderr, log,
                 (files(running) / "server.json").read_text()):
        assert secret not in text and secret.split(":")[1] not in text and encoded not in text


def test_an_open_client_holds_the_server_until_its_process_ends_even_by_sigkill(
    running: pathlib.Path,
) -> None:
    """The server may stop when idle only if it can lock clients.lock exclusively: a process
    with a client open (never closed here) prevents that until it dies."""
    from orchestration_client._local_server import _files

    code = ("import time\nfrom orchestration_client import get_client\nclient = get_client()\n"
            "client.hello()\nprint('open', flush=True)\ntime.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], env=environment(running),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        lock = str(files(running) / "clients.lock")
        assert _files.acquire(lock, shared=False, deadline=None) is None
    finally:
        holder.kill()
        holder.wait()
    descriptor = _files.acquire(lock, shared=False, deadline=time.monotonic() + 10)
    assert descriptor is not None
    os.close(descriptor)


def test_files_are_private(running: pathlib.Path) -> None:
    assert files(running).stat().st_mode & 0o777 == 0o700
    for name in ("server.json", "credential", "server.log", "start.lock", "clients.lock"):
        info = (files(running) / name).stat()
        assert info.st_mode & 0o777 == 0o600, name
        assert info.st_uid == os.geteuid()


# ---- crashes during start ---------------------------------------------------------------------------


def test_a_process_killed_while_holding_the_start_lock_blocks_no_one(local_home: Home) -> None:
    home = local_home("home")
    files(home).mkdir(mode=0o700)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(600)\n",
         str(files(home) / "start.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        holder.kill()
        holder.wait()
        run(home, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="20")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_a_starter_killed_mid_start_leaves_a_server_the_next_process_uses(local_home: Home) -> None:
    home = local_home("home")
    starter = subprocess.Popen([sys.executable, "-c", CLIENT], env=environment(home),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not servers_under(home):  # the server process exists: kill the starter now
        assert time.monotonic() < deadline and starter.poll() is None
        time.sleep(0.02)
    assert not (files(home) / "server.json").exists(), "killed before the server was ready"
    starter.kill()
    starter.wait()
    later = run(home)
    assert "using the local Prefect server" in later.stderr
    assert len(servers_under(home)) == 1


def test_a_server_that_cannot_start_says_why_and_frees_the_lock(local_home: Home) -> None:
    home = local_home("home")
    # A database path below a regular file: the server fails while starting.
    broken = {"PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db/x.db"}
    failed = subprocess.run([sys.executable, "-c", CLIENT], env=environment(home, **broken),
                            capture_output=True, text=True, timeout=180)
    assert failed.returncode == 1
    assert "RuntimeError: The local Prefect server did not start (no record); the end of its log, " \
        f"{files(home) / 'server.log'}:" in failed.stderr
    assert not servers_under(home)
    run(home)  # the lock is free: a good environment starts at once


# ---- the notice -------------------------------------------------------


NOTICE = """
import logging, sys
{setup}
from orchestration_client import get_client
for _ in range(3):
    with get_client() as client:
        client.hello()
"""


@pytest.mark.parametrize("setup, shown", [
    ("", "orchestration_client: no PREFECT_API_URL in "),
    ("logging.basicConfig(format='%(levelname)s %(name)s | %(message)s')",
     "WARNING orchestration_client.local_server | no PREFECT_API_URL in "),
    ("logging.getLogger('orchestration_client.local_server').setLevel(logging.ERROR)", None),
    ("logging.getLogger('orchestration_client').setLevel(logging.ERROR)", None),
    ("logging.basicConfig(level=logging.ERROR)", None),
])
def test_the_notice_shows_once_by_default_and_logging_silences_it(
    running: pathlib.Path, setup: str, shown: Optional[str]
) -> None:
    stderr = run(running, code=NOTICE.format(setup=setup)).stderr
    if shown is None:
        assert stderr == ""
    else:
        assert stderr.count(shown) == 1 and stderr.count("no PREFECT_API_URL") == 1, stderr
