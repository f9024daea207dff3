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
import shutil
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
                            capture_output=True, text=True, timeout=timeout,
                            errors="surrogateescape")
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def cli(home: pathlib.Path, *args: str, **extra: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "orchestration_client", "server", *args],
                          env=environment(home, **extra), capture_output=True, text=True,
                          timeout=180, errors="surrogateescape")


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


def write_record(home: pathlib.Path, value: Dict[str, object]) -> None:
    """Replace the record (as the server writes it: mode 0600)."""
    path = files(home) / "server.json"
    temporary = path.with_name(".forged")
    temporary.write_text(json.dumps(value))
    temporary.chmod(0o600)
    temporary.rename(path)


def clients_lock_free(home: pathlib.Path) -> bool:
    """No process holds the clients lock (no client open)."""
    import fcntl

    descriptor = os.open(files(home) / "clients.lock", os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)


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
    stop_hint = (f"to stop it now: PREFECT_HOME={home} {sys.executable} -m orchestration_client "
                 "server stop")
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


HOLDER = """
import sys, time
from orchestration_client import get_client
client = get_client()
client.hello()
print("ready", client.api_url, flush=True)
for line in sys.stdin:
    started = time.monotonic()
    try:
        if line.strip() == "state":
            from orchestration_client.schemas import Task
            from orchestration_client.states import Running
            run = client.create_task_run(Task(name="t"), flow_run_id=None, dynamic_key="0")
            print("created", flush=True)
            sys.stdin.readline()
            started = time.monotonic()
            client.set_task_run_state(run.id, Running())
        else:
            client.hello()
        print("ok", flush=True)
    except Exception as exc:
        print(type(exc).__name__, round(time.monotonic() - started, 1), exc, flush=True)
"""


class Holder:
    """A script with a client open on the shared server; ``call()`` makes it call."""

    def __init__(self, home: pathlib.Path, **extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER], env=environment(home, **extra), text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("ready "), self.process.stderr.read() if self.process.stderr else ""
        self.url = line.split()[1]

    def call(self, what: str = "hello") -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(what + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


def test_another_prefect_version_is_used_while_in_use_and_replaced_once_idle(
    local_home: Home,
) -> None:
    """Defect 3 (other_prefect_version_kills_server_in_use): a server of another Prefect
    version (another virtualenv, or an upgrade) is never killed under an open client: it is
    used, saying so, and replaced by the next script once no client is open."""
    home = local_home("home")
    holder = Holder(home)
    try:
        old = record(home)
        write_record(home, dict(old, prefect_version="3.0.0"))
        again = run(home, code="import logging; logging.basicConfig(level=logging.INFO)\n" + CLIENT)
        assert json.loads(again.stdout)["url"] == holder.url
        assert record(home)["pid"] == old["pid"] and alive(int(old["pid"]))  # type: ignore[call-overload]
        assert ("It runs Prefect 3.0.0, not the 3." in again.stderr and "installed here, and other "
                "scripts are using it; once none is, the next script replaces it") in again.stderr
        assert holder.call() == "ok"
    finally:
        holder.close()
    replaced = run(home, code="import logging; logging.basicConfig(level=logging.INFO)\n" + CLIENT)
    assert (f"replacing the local Prefect server at {old['url']}: it runs Prefect 3.0.0 and "
            "Prefect 3.") in replaced.stderr
    assert gone_within(int(old["pid"]), 30)  # type: ignore[call-overload]
    new = record(home)
    assert new["pid"] != old["pid"]
    # A newer Prefect than the one installed here is kept, idle or not: an older Prefect
    # cannot open a database that a newer one has upgraded.
    write_record(home, dict(new, prefect_version="99.0.0"))
    kept = run(home)
    assert record(home)["pid"] == new["pid"]
    assert "It runs Prefect 99.0.0, newer than the 3." in kept.stderr
    assert "cannot open a database that a newer Prefect has upgraded" in kept.stderr


def test_an_older_prefect_on_an_upgraded_database_says_so(local_home: Home) -> None:
    """Defect 3: the database was upgraded by a newer Prefect (its migration history names a
    revision the installed Prefect does not know): the error says that, and what to do."""
    import sqlite3

    home = local_home("home")
    with sqlite3.connect(home / "prefect.db") as database:
        database.execute("UPDATE alembic_version SET version_num = 'f00dfeedbeef'")
    failed = subprocess.run([sys.executable, "-c", CLIENT], env=environment(home),
                            capture_output=True, text=True, timeout=180)
    assert failed.returncode == 1
    assert (f"cannot open the database in PREFECT_HOME={home}, which a newer Prefect has "
            "upgraded") in failed.stderr
    assert "or set PREFECT_API_URL" in failed.stderr
    assert not servers_under(home)


def test_a_credential_others_could_read_gets_a_new_server_even_in_use(local_home: Home) -> None:
    """Defect 3: a credential file whose mode was loosened may have been read: that server
    is stopped at once, even under an open client, whose next call fails at once, saying
    so (it is not sent to the new server either)."""
    home = local_home("home")
    holder = Holder(home)
    try:
        old = record(home)
        (files(home) / "credential").chmod(0o644)
        again = run(home)
        assert "stopping the local Prefect server" in again.stderr
        assert "the credential may be known to others" in again.stderr
        assert gone_within(int(old["pid"]), 30)  # type: ignore[call-overload]
        assert record(home)["pid"] != old["pid"]
        assert (files(home) / "credential").stat().st_mode & 0o777 == 0o600
        answer = holder.call()
        assert answer.startswith("APIConnectionError ") and "is no longer running" in answer
        assert float(answer.split()[1]) < 5, answer
    finally:
        holder.close()


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
    from orchestration_client._local_server import _identity, _shared

    home = local_home("home")
    run(home)
    machine = _identity.here()  # as the server (not patched) records it
    for check in ("linux-socket-table", "challenge"):
        original, secret = record(home), credential(home)
        foreign = ForeignProgram(0)
        port = foreign.sock.getsockname()[1]
        forged = dict(original, port=port, url=f"http://127.0.0.1:{port}/api", format=2)
        if check == "challenge":
            monkeypatch.setattr(_identity, "_LINUX", False)
            monkeypatch.setattr(_identity, "here", lambda: machine)
        write_record(home, forged)
        try:
            server = _shared.connect(str(home), 600, 60)
            assert isinstance(server, _shared.SharedServer)
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


def test_a_server_this_process_cannot_reach_is_not_stopped_while_in_use(
    local_home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Round 2 (other_net_namespace_kills_server_in_use): seen from another network
    namespace the socket table shows no listener and the challenge cannot connect (forced
    here). The server in use is left alone and this process gets a server of its own,
    saying why; once no client uses it, it is replaced as before."""
    from orchestration_client._local_server import _identity, _shared

    home = local_home("home")
    holder = Holder(home)
    try:
        pid, port = int(record(home)["pid"]), int(record(home)["port"])  # type: ignore[call-overload]
        owns, proves = _identity.owns_port, _identity.proves_credential
        monkeypatch.setattr(_identity, "owns_port",
                            lambda p, q: None if q == port else owns(p, q))  # fmt: skip
        monkeypatch.setattr(_identity, "proves_credential",
                            lambda q, a, timeout=5.0: q != port and proves(q, a))  # fmt: skip
        outcome = _shared.connect(str(home), 600, 60)
        assert isinstance(outcome, _shared.Fallback), outcome
        assert "cannot be reached or verified from this process" in outcome.reason
        assert "other scripts are using it" in outcome.reason
        assert alive(pid) and record(home)["pid"] == pid and clients_lock_free(home) is False
        assert holder.call() == "ok"
    finally:
        holder.close()
    replaced = _shared.connect(str(home), 600, 60)  # unused now: replaced
    assert isinstance(replaced, _shared.SharedServer)
    replaced.stop()
    assert replaced.record.pid != pid and gone_within(pid, 30)


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
    code = ("import time\nfrom orchestration_client import get_client\nclient = get_client()\n"
            "client.hello()\nprint('open', flush=True)\ntime.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], env=environment(running),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        assert not clients_lock_free(running)
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while not clients_lock_free(running):
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_a_client_dropped_unclosed_lets_go_of_the_server_once_collected(
    running: pathlib.Path,
) -> None:
    """Round 2 (dropped_client_keeps_server): a client made in a function, never closed,
    and collected lets go of the shared server (the server may stop when idle) while its
    process lives on; the client kept in ``client`` above still holds it."""
    code = ("import gc, sys\nfrom orchestration_client import get_client\n"
            "def work():\n    get_client().hello()\n"
            "kept = get_client()\nwork()\ngc.collect()\nprint('dropped', flush=True)\n"
            "sys.stdin.readline()\ndel kept\ngc.collect()\nprint('all', flush=True)\n"
            "sys.stdin.readline()\n")  # fmt: skip
    process = subprocess.Popen([sys.executable, "-c", code], env=environment(running),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline() == "dropped\n"
        assert not clients_lock_free(running), "the client still referenced holds it"
        process.stdin.write("\n")
        process.stdin.flush()
        assert process.stdout.readline() == "all\n"
        assert clients_lock_free(running), "collected clients hold nothing"
    finally:
        process.kill()
        process.wait()


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


def test_server_stop_winning_the_race_during_a_start_is_not_called_a_failed_start(
    local_home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Round 2 (stop_during_start_misreported): ``server stop`` waits for the start lock,
    which the new server gives back once it serves; when the stop gets it first (forced
    here), the starter does not say the server "did not start": it starts once more."""
    from orchestration_client._local_server import _files, _shared

    home = local_home("home")
    original = _files.Directory.lock
    seen: List[str] = []

    def lock(self: _files.Directory, name: str, shared: bool, deadline: Optional[float]) -> Optional[int]:
        if name == _files.START_LOCK and not shared and deadline is not None:
            seen.append(name)
            if len(seen) == 2:  # the starter taking it back from its new server: stop first
                stopped = cli(home, "stop")
                seen.append(stopped.stdout)
        return original(self, name, shared, deadline)

    monkeypatch.setattr(_files.Directory, "lock", lock)
    server = _shared.connect(str(home), 600, 60)
    assert isinstance(server, _shared.SharedServer)
    server.stop()
    assert seen[2].startswith("stopped the local Prefect server at "), seen
    first = int(seen[2].split("(pid ")[1].split(")")[0])
    assert server.started_in is not None and server.record.pid != first and not alive(first)
    assert record(home)["pid"] == server.record.pid


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


# ---- the adversarial review's defects (issue 17) ------------------------------------------------


def test_a_directory_swapped_while_the_server_starts_gets_nothing(local_home: Home) -> None:
    """Defect 1 (writable_home_symlink_clobber): the directory is renamed away while the
    server starts and another put in its place, with links planted at every name the
    server might write: the server writes only into the directory the starter checked,
    through its descriptor; the starter finds it there; nothing is clobbered."""
    home = local_home("home")
    victim = home.parent / "victim.txt"
    victim.write_text("precious")
    starter = subprocess.Popen([sys.executable, "-c", CLIENT], env=environment(home),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not servers_under(home):
        assert time.monotonic() < deadline and starter.poll() is None
        time.sleep(0.01)
    (files(home)).rename(home / "moved")
    files(home).mkdir(mode=0o700)
    for name in ["server.json", "credential", "server.log", "start.lock", "clients.lock"] + [
        f"{name}.{pid}.tmp" for pid, _ in servers_under(home) for name in ("server.json", "credential")
    ]:
        (files(home) / name).symlink_to(victim)
    _, err = starter.communicate(timeout=180)
    assert starter.returncode == 0, err
    assert victim.read_text() == "precious"
    assert (home / "moved" / "server.json").exists() and (home / "moved" / "credential").exists()
    assert all(p.is_symlink() for p in files(home).iterdir())
    # The next process opens the swapped-in directory, finds links, and uses none of them.
    later = subprocess.run([sys.executable, "-c", CLIENT], env=environment(home),
                           capture_output=True, text=True, timeout=180)
    assert later.returncode == 1 and "is a symbolic link, which is never followed" in later.stderr, \
        later.stderr
    assert victim.read_text() == "precious"
    shutil.rmtree(files(home))
    (home / "moved").rename(files(home))  # for the fixture, which stops the server


def test_a_server_stuck_before_serving_is_ended_and_frees_the_lock(
    local_home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server process that hangs before it can serve (here: in ``import uvicorn``) is
    ended by its starter once the startup time is up: no server is left behind, and the
    start lock is free for the next process."""
    from orchestration_client._local_server import _shared

    home = local_home("home")
    stuck = home.parent / "stuck"
    (stuck / "uvicorn").mkdir(parents=True)
    (stuck / "uvicorn" / "__init__.py").write_text("import time\ntime.sleep(600)\n")
    monkeypatch.setenv("PYTHONPATH", str(stuck))
    monkeypatch.setattr(_shared, "_IMPORT_MARGIN", 2.0)
    began = time.monotonic()
    with pytest.raises(RuntimeError, match=r"was not serving within its startup timeout \(1 s, "
                       r"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, and 2 s for its "
                       r"imports\), and was ended"):
        _shared.connect(str(home), 600, 1.0)
    assert time.monotonic() - began < 30
    deadline = time.monotonic() + 10
    while servers_under(home):
        assert time.monotonic() < deadline, "the stuck server was left running"
        time.sleep(0.1)
    monkeypatch.delenv("PYTHONPATH")
    run(home, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="60")  # starts at once


def test_a_listener_on_another_address_with_our_port_changes_nothing(local_home: Home) -> None:
    """Defect 2 (other_address_listener_kills_server): another program listening on the
    server's port number at [::1], [::] and 127.0.0.2 (which our clients never reach) does
    not make the next script replace the healthy server under an open client."""
    home = local_home("home")
    holder = Holder(home)
    try:
        port, pid = int(record(home)["port"]), int(record(home)["pid"])  # type: ignore[call-overload]
        for addresses in (["::1", "127.0.0.2"], ["::"]):  # [::1] and [::] exclude each other
            listeners = []
            for address in addresses:
                listener = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
                if ":" in address:  # v6 only (/proc cannot tell): it takes nothing for 127.0.0.1
                    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                listener.bind((address, port))
                listener.listen()
                listeners.append(listener)
            try:
                later = run(home)
            finally:
                for listener in listeners:
                    listener.close()
            assert f"using the local Prefect server at http://127.0.0.1:{port}/api" in later.stderr
            assert record(home)["pid"] == pid and alive(pid)
            assert holder.call() == "ok"
    finally:
        holder.close()


def test_a_record_from_another_pid_namespace_or_host_is_not_replaced(local_home: Home) -> None:
    """Defect 4 (home_shared_across_pid_namespaces): a record names a pid of another pid
    namespace (a container sharing the directory) or another host. While that server runs
    the call fails, saying so, instead of starting a second server on the same database; a
    record whose server has ended (on this kernel: its credential is not locked), or left
    from an earlier boot of this host, is replaced."""
    import fcntl

    from orchestration_client._local_server import _identity, _shared

    home = local_home("home")
    files(home).mkdir(mode=0o700)
    machine = _identity.here()
    base = json.loads(RECORD_TEMPLATE)
    (files(home) / "credential").write_text(json.dumps({"id": base["id"], "auth_string": "x"}))
    (files(home) / "credential").chmod(0o600)
    held = os.open(files(home) / "credential", os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # as the server in the other namespace does
    try:
        for changes, where in [
            ({"pid_namespace": "pid:[1]"}, "runs in another pid namespace of this machine"),
            ({"boot_id": "other-boot", "hostname": "elsewhere"}, "runs on another host"),
        ]:
            write_record(home, {**base, "boot_id": machine.boot_id, "hostname": machine.hostname,
                                "pid_namespace": machine.pid_namespace, **changes})
            with pytest.raises(RuntimeError, match=where + r".*Set PREFECT_API_URL .* a "
                               r"PREFECT_HOME of its own\. If that server is no longer running, "
                               "remove .*server.json"):
                _shared.connect(str(home), 600, 60)
            status = cli(home, "status")
            assert status.returncode == 1 and where in status.stdout
            stop = cli(home, "stop")
            assert stop.returncode == 1 and where in stop.stderr
            assert (files(home) / "server.json").exists()
        assert not servers_under(home) and clients_lock_free(home)
    finally:
        os.close(held)
    # Unlocked now: its server has ended. The same goes for a record of an earlier boot.
    write_record(home, dict(base, boot_id=machine.boot_id, hostname=machine.hostname,
                            pid_namespace="pid:[1]"))
    run(home)
    assert record(home)["pid_namespace"] == machine.pid_namespace
    old = record(home)
    cli(home, "stop")
    write_record(home, dict(old, boot_id="an-earlier-boot"))
    assert cli(home, "status").returncode == 1
    run(home)
    assert record(home)["boot_id"] == machine.boot_id and record(home)["id"] != old["id"]


RECORD_TEMPLATE = json.dumps({
    "format": 2, "id": "0123456789abcdef", "url": "http://127.0.0.1:4321/api", "port": 4321,
    "pid": 1, "prefect_version": "3.9.1", "idle_timeout": 600.0, "started_at": 1.0,
    "python": "/usr/bin/python3", "boot_id": "", "pid_namespace": "", "hostname": "",
    "settings": {}, "salt": "s",
})


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for unshare --pid")
def test_a_container_sharing_the_home_does_not_start_a_second_server(local_home: Home) -> None:
    """Defect 4, for real: a process in a pid namespace of its own (``unshare --pid``, as a
    container sharing the directory) finds the host's server running and says so."""
    import shutil

    if shutil.which("unshare") is None or subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True
    ).returncode != 0:
        pytest.skip("unshare --pid is not permitted here")
    home = local_home("home")
    holder = Holder(home)
    try:
        pid = record(home)["pid"]
        inside = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable,
                                 "-c", CLIENT], env=environment(home), capture_output=True,
                                text=True, timeout=180)  # fmt: skip
        assert inside.returncode == 1
        assert "runs in another pid namespace of this machine" in inside.stderr
        assert [p for p, _ in servers_under(home)] == [pid]
        assert json.loads(run(home).stdout)["url"] == holder.url
    finally:
        holder.close()


CREATE = """
import json
from orchestration_client import get_client
from orchestration_client.schemas import Task
with get_client() as client:
    run = client.create_task_run(Task(name="isolated"), flow_run_id=None, dynamic_key="0")
print(json.dumps({"id": str(run.id), "url": client.api_url}))
"""


def task_run_in(database: pathlib.Path, run_id: str) -> bool:
    import sqlite3

    with sqlite3.connect(database) as connection:
        found = connection.execute("SELECT count(*) FROM task_run WHERE id = ?", (run_id,))
        return bool(found.fetchone()[0])


def test_a_script_with_other_server_settings_gets_a_server_with_them(
    local_home: Home, template_db: pathlib.Path
) -> None:
    """Defect 5 (server_settings_of_first_script_win): a script whose server settings differ
    (its own database here) is never served by a server with other settings: while other
    scripts use the shared server it gets a server of its own, saying why; once none does,
    the shared server is replaced by one with its settings (from prefect.toml too)."""
    home = local_home("home")
    own = home.parent / "own.db"
    own.write_bytes(template_db.read_bytes())
    setting = {"PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{own}"}
    holder = Holder(home)
    try:
        shared_pid = record(home)["pid"]
        in_use = run(home, code=CREATE, **setting)
        made = json.loads(in_use.stdout)
        assert made["url"] != holder.url + "/"
        assert task_run_in(own, made["id"]) and not task_run_in(home / "prefect.db", made["id"])
        assert ("for this process only (the shared local Prefect server at "
                f"{record(home)['url']} (pid {shared_pid})") in in_use.stderr
        assert ("runs with other server settings (PREFECT_SERVER_DATABASE_CONNECTION_URL "
                "differs), and other scripts are using it)") in in_use.stderr
        assert record(home)["pid"] == shared_pid and holder.call() == "ok"
    finally:
        holder.close()
    project = home.parent / "project"
    project.mkdir()
    (project / "prefect.toml").write_text(
        f'[server.database]\nconnection_url = "sqlite+aiosqlite:///{own}"\n')
    idle = subprocess.run([sys.executable, "-c", CREATE], env=environment(home), cwd=project,
                          capture_output=True, text=True, timeout=180)
    assert idle.returncode == 0, idle.stderr
    made = json.loads(idle.stdout)
    assert task_run_in(own, made["id"]) and not task_run_in(home / "prefect.db", made["id"])
    assert "started a local Prefect server" in idle.stderr
    assert gone_within(int(shared_pid), 30)  # type: ignore[call-overload]
    assert list(record(home)["settings"]) == ["PREFECT_SERVER_DATABASE_CONNECTION_URL"]  # type: ignore[call-overload]
    assert str(own) not in (files(home) / "server.json").read_text()


def test_the_server_creates_private_files(running: pathlib.Path) -> None:
    """Defect 6 (database_readable_by_other_users): the server runs with umask 077, so the
    database and everything else Prefect creates for it is this user's only (a
    PREFECT_HOME it has to create is made 0700: tests/unit/test_local_server_files.py)."""
    pid = int(record(running)["pid"])  # type: ignore[call-overload]
    status = pathlib.Path(f"/proc/{pid}/status").read_text().splitlines()
    assert next(line for line in status if line.startswith("Umask:")).split()[1] == "0077"


CLOSED = """
import os, sys, traceback
report = os.dup(1)  # the test reads this copy, above 2
for fd in {closed}:
    os.close(fd)
try:
    from orchestration_client import get_client
    client = get_client()
    client.api_healthcheck()
    os.write(report, b"OK")
except BaseException:
    os.write(report, traceback.format_exc().encode())
"""


@pytest.mark.parametrize("closed, idle", [((0, 1, 2), "600"), ((0, 1), "600"), ((0, 1, 2), "0")])
def test_a_process_with_closed_standard_descriptors_gets_its_server(
    local_home: Home, closed: "tuple[int, ...]", idle: str
) -> None:
    """Defect 7 (closed_std_fds): a daemon that closed stdin, stdout (and stderr) starts
    the shared server (its locks and socket do not land where the server's stdio goes),
    and a server of its own with a timeout of 0."""
    home = local_home("home")
    done = subprocess.run(
        [sys.executable, "-c", CLOSED.format(closed=closed)], capture_output=True, text=True,
        env=environment(home, ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT=idle), timeout=180,
    )  # fmt: skip
    assert done.stdout == "OK", done.stdout + done.stderr
    if idle != "0":
        assert cli(home, "status").returncode == 0


def test_a_home_that_is_not_utf8_works_and_can_be_stopped(local_home: Home) -> None:
    """Defect 8 (non_utf8_home_orphans): a PREFECT_HOME whose name is not UTF-8 (a Latin-1
    directory name) is served, shown and stopped like any other."""
    parent = local_home("home").parent
    home = pathlib.Path(os.fsdecode(bytes(parent) + b"/caf\xe9"))
    home.mkdir()
    (parent / "home" / "prefect.db").rename(home / "prefect.db")
    run(home)
    pid = int(record(home)["pid"])  # type: ignore[call-overload]
    assert cli(home, "status").returncode == 0
    stopped = cli(home, "stop")
    assert stopped.returncode == 0 and f"(pid {pid})" in stopped.stdout
    assert gone_within(pid, 10) and not servers_under(parent)


def test_a_closed_stderr_does_not_fail_get_client(running: pathlib.Path) -> None:
    """Defect 9 (notice_with_closed_stderr): with sys.stderr closed the notice is lost,
    get_client() works, and the process's hold on the server goes with its last client."""
    code = """
import os, sys
report = os.fdopen(os.dup(1), "w")
sys.stderr.close()
from orchestration_client import get_client
with get_client() as client:
    print(client.hello().json(), file=report, flush=True)
print("closed", file=report, flush=True)
sys.stdin.readline()
"""
    process = subprocess.Popen([sys.executable, "-c", code], env=environment(running),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "👋\n"
        assert process.stdout.readline() == "closed\n"
        assert clients_lock_free(running)
    finally:
        process.kill()
        process.communicate()


def test_a_stopped_server_fails_an_open_clients_calls_at_once_saying_so(local_home: Home) -> None:
    """Defect 10 (stopped_server_slow_failure): after ``server stop`` an open client's next
    call fails at once (it took a minute of retries) with an error naming the stopped local
    server and what to do; a state change then is surely not applied (not "unknown")."""
    home = local_home("home")
    holder = Holder(home)
    try:
        assert holder.call("state") == "created"
        assert cli(home, "stop").returncode == 0
        assert cli(home, "start").returncode == 0  # another script started a new one
        for answer in (holder.call(), holder.call("")):
            assert answer.startswith("APIConnectionError "), answer
            assert float(answer.split()[1]) < 5, answer
            assert f"the local Prefect server this client was using ({holder.url[:-1]}," in answer
            assert "is no longer running" in answer and "server stop" in answer
            assert "Call get_client() again" in answer
    finally:
        holder.close()


def test_a_program_on_the_port_of_a_stopped_server_gets_nothing(local_home: Home) -> None:
    """Defect 11 (credential_sent_to_port_squatter): a client whose server was killed never
    sends anything, credential included, to the next program on that port: every new
    connection is checked first."""
    home = local_home("home")
    code = """
import sys
from orchestration_client import get_client
client = get_client()
print("ready", flush=True)
sys.stdin.readline()
try:
    client.hello()
    print("ok", flush=True)
except Exception as exc:
    print(type(exc).__name__, exc, flush=True)
"""
    process = subprocess.Popen([sys.executable, "-c", code], env=environment(home), text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)  # fmt: skip
    foreign = None
    try:
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline() == "ready\n"
        old, secret = record(home), credential(home)
        sigkill(int(old["pid"]))  # type: ignore[call-overload]
        foreign = ForeignProgram(int(old["port"]))  # type: ignore[call-overload]
        process.stdin.write("go\n")
        process.stdin.flush()
        answer = process.stdout.readline()
        assert answer.startswith("APIConnectionError") and "no longer running" in answer
        assert foreign.received == [] and not foreign.saw(secret)
    finally:
        process.kill()
        process.communicate()
        if foreign is not None:
            foreign.close()


def test_a_read_only_home_says_what_to_do(tmp_path: pathlib.Path) -> None:
    """Defect 12 (read_only_home_error): the error names PREFECT_HOME, what failed and what
    to do, not a bare ``[Errno 30]``."""
    import shutil

    home = tmp_path / "home"
    home.mkdir()
    code = ("from orchestration_client import get_client\ntry:\n    get_client()\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)\n")
    if os.geteuid() == 0:  # root writes anywhere: a read-only mount, in a namespace of its own
        if shutil.which("unshare") is None:
            pytest.skip("needs unshare(1) as root")
        shell = (f"mount --bind '{home}' '{home}' && mount -o remount,ro,bind '{home}' && "
                 f'exec {sys.executable} -c "$CODE"')
        argv = ["unshare", "-m", "sh", "-c", shell]
    else:
        home.chmod(0o500)
        argv = [sys.executable, "-c", code]
    done = subprocess.run(argv, env=environment(home, CODE=code), capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    if os.geteuid() == 0 and not done.stdout:
        pytest.skip(f"no read-only mount here: {done.stderr[-300:]}")
    assert f"could not create {home}/orchestration_client: " in done.stdout, done.stdout
    assert f"PREFECT_HOME ({home})" in done.stdout and "set PREFECT_API_URL" in done.stdout


def test_calls_to_the_local_server_never_go_through_a_proxy(running: pathlib.Path) -> None:
    """With HTTP_PROXY set and no NO_PROXY, the calls to the local server (with its
    credential) went to the proxy, which cannot even reach this machine's 127.0.0.1."""
    proxy = ForeignProgram(0)
    try:
        address = f"http://127.0.0.1:{proxy.sock.getsockname()[1]}"
        result = run(running, HTTP_PROXY=address, http_proxy=address, ALL_PROXY=address)
        assert json.loads(result.stdout)["hello"] == "👋"
        assert proxy.received == []
    finally:
        proxy.close()
