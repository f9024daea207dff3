"""Runs as the local Prefect server's process, started by path (``python _guard.py ...``) so
that it needs nothing but the standard library, uvicorn and Prefect. Two ways to run:

``_guard.py <parent pid> <pdeathsig> <uvicorn arguments...>``: a server for one process
(``ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT=0``), whose life is tied to its parent's.
However the parent ends (exit, SIGTERM, SIGKILL, OOM kill), the server ends too:

* the parent holds the write end of this process's stdin and never writes; when the parent
  dies the pipe closes, a watchdog thread reads EOF (it also notices the parent pid change),
  and the whole process group (the server and anything it started) gets SIGTERM, then
  SIGKILL after ``GRACE_SECONDS``;
* on Linux the kernel also sends SIGTERM at once (``prctl(PR_SET_PDEATHSIG)``), when the
  parent started the server from its main thread (the signal follows the thread that
  forked, so it is not used from other threads).

``_guard.py --shared --directory D --id I --directory-fd F --socket-fd N --lock-fd M
--pid-fd P --idle-timeout T --startup-timeout S``: the shared server of one ``PREFECT_HOME``,
which outlives the process that started it. It forks once, writes the pid of its child to
descriptor P (so the starter knows which process to end if the start fails) and the child
starts a session of its own (so it is nobody's child and no terminal's). It reaches its
files only through the directory descriptor F that the starter opened and checked
(``_files``), serves Prefect's API on the listening socket it was handed, behind
``Guarded``: every request must carry the credential (from
``PREFECT_SERVER_API_AUTH_STRING``) as Basic auth, and each one is stamped. It inherits the
start lock (``_files``) and keeps it until it has written its credential and record, so
nobody else starts a server meanwhile and a crash during start frees the lock. If it is not
serving within S seconds plus a margin for the imports, it ends itself, whatever it was
stuck in. It holds an ``flock`` on its credential file for as long as it runs (how a
process in another pid namespace tells that it is alive). A watchdog stops it after T
seconds without requests, once no process holds the clients lock; the record is removed
first, and again on any other way out (SIGTERM included).

Both kinds run with umask 077: the database and every other file Prefect creates for them
are readable by this user only.
"""

import base64
import binascii
import hmac
import importlib.util
import os
import signal
import socket
import sys
import threading
import time
from typing import Any, Awaitable, Callable, Dict, List, MutableMapping

GRACE_SECONDS = 5.0
#: How long a server that was told to stop may take before it is ended by force.
STOP_SECONDS = 30.0
#: On top of the startup timeout: Prefect's imports come before uvicorn's own clock runs.
IMPORT_MARGIN = 30.0
#: Passed by the starter: the salted hashes of the server settings it was started with.
FINGERPRINT_VARIABLE = "ORCHESTRATION_CLIENT_SERVER_FINGERPRINT"
_PR_SET_PDEATHSIG = 1
_HERE = os.path.dirname(os.path.abspath(__file__))

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _say(text: str) -> None:
    """A line in the server's log (its stderr); never a credential."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    sys.stderr.write(f"{stamp} orchestration_client local server [{os.getpid()}]: {text}\n")
    sys.stderr.flush()


def _load_sibling(name: str) -> Any:
    """A module of this package loaded by path (this process does not import the package)."""
    spec = importlib.util.spec_from_file_location(
        f"_orchestration_client_{name}", os.path.join(_HERE, f"{name}.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _unshadow() -> None:
    """Drop this directory from ``sys.path``: its modules must not shadow anyone's."""
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != _HERE]


# ---- one process's server ------------------------------------------------------------------


def _set_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the watchdog still covers it


def _end_all(sig: int) -> None:
    """Signal this process's group when it leads one (its children too), else itself."""
    if hasattr(os, "killpg") and os.getpgid(0) == os.getpid():
        os.killpg(os.getpid(), sig)
    else:
        os.kill(os.getpid(), sig)


def _watch(parent_pid: int) -> None:
    """Wait until the parent is gone, then end the server, by force if it lingers."""
    stdin = sys.stdin.buffer
    reader = threading.Thread(target=lambda: stdin.read(), daemon=True)
    reader.start()  # read() returns at EOF: the parent's end of the pipe closed
    while reader.is_alive() and os.getppid() == parent_pid:
        reader.join(0.5)
    _end_all(signal.SIGTERM)
    time.sleep(GRACE_SECONDS)
    _end_all(signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)


def _serve_for_parent(argv: List[str]) -> None:
    os.umask(0o077)
    parent_pid, pdeathsig, uvicorn_args = int(argv[1]), argv[2] == "1", argv[3:]
    if pdeathsig:
        _set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        sys.exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), daemon=True).start()
    _unshadow()
    from uvicorn.main import main as uvicorn_main  # not shadowed by this package's modules

    sys.argv = ["uvicorn", *uvicorn_args]
    uvicorn_main()


# ---- the shared server -----------------------------------------------------------------------


class Guarded:
    """ASGI middleware in front of Prefect's app: refuses requests without the credential
    (401, or a closed websocket), answers the identity challenge, and stamps every request
    so the watchdog knows how long the server has been idle."""

    def __init__(self, app: ASGIApp, auth_string: str, port: int, proof: Any) -> None:
        self.app = app
        self._secret = auth_string.encode("utf-8")
        self._port = port
        self._proof = proof
        self.in_flight = 0
        self.last_request = time.monotonic()
        self.on_shutdown: Callable[[], None] = lambda: None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._noting_shutdown(receive), send)
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        self.in_flight += 1
        self.last_request = time.monotonic()
        try:
            if scope["type"] == "http" and scope.get("path") == self._proof_path:
                await self._answer_challenge(scope, send)
            elif not self._authorized(scope):
                await self._refuse(scope, send)
            else:
                await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.last_request = time.monotonic()

    def _noting_shutdown(self, receive: Receive) -> Receive:
        """``receive`` that calls ``on_shutdown`` when uvicorn starts shutting down (also on
        SIGTERM, after which uvicorn re-raises the signal and no ``finally`` runs)."""

        async def receive_and_note() -> Message:
            message = await receive()
            if message.get("type") == "lifespan.shutdown":
                self.on_shutdown()
            return message

        return receive_and_note

    @property
    def _proof_path(self) -> str:
        return str(self._proof.PROOF_PATH)

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name.lower() != b"authorization":
                continue
            scheme, _, encoded = value.partition(b" ")
            if scheme.lower() != b"basic":
                return False
            try:
                given = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(given, self._secret)
        return False

    async def _refuse(self, scope: Scope, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await _reply(send, 401, b'{"exception_message": "Unauthorized"}', b"application/json")

    async def _answer_challenge(self, scope: Scope, send: Send) -> None:
        query = scope.get("query_string", b"").decode("ascii", "replace")
        nonce = dict(part.partition("=")[::2] for part in query.split("&")).get("nonce", "")
        if not (32 <= len(nonce) <= 128 and all(c in "0123456789abcdef" for c in nonce)):
            await _reply(send, 400, b"a nonce of 32 to 128 hex digits is required", b"text/plain")
            return
        answer = self._proof.proof(self._secret.decode("utf-8"), self._port, nonce)
        await _reply(send, 200, answer.encode("ascii"), b"text/plain")


async def _reply(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _options(argv: List[str]) -> Dict[str, str]:
    options = {}
    for index in range(2, len(argv) - 1, 2):
        if not argv[index].startswith("--"):
            raise SystemExit(f"unexpected argument {argv[index]!r}")
        options[argv[index][2:]] = argv[index + 1]
    return options


def _detach(pid_fd: int) -> None:
    """Fork once and lead a new session: the starting process's Popen ends at once (after
    writing the child's pid to ``pid_fd``), and this server is reparented, in no process
    group or terminal of the caller's."""
    child = os.fork()
    if child > 0:
        try:
            os.write(pid_fd, f"{child}\n".encode())
        finally:
            os._exit(0)
    os.close(pid_fd)
    os.setsid()


def _end_unless_published(published: threading.Event, seconds: float) -> None:
    """Whatever the server is stuck in (an import, a migration, a lock), it ends once
    ``seconds`` have passed without its record being published."""
    if published.wait(seconds):
        return
    _say(f"not serving after {seconds:g} s: ending now")
    _end_all(signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
    os._exit(3)


class _Watchdog:
    def __init__(self, server: Any, guarded: Guarded, files: Any, directory: Any,
                 options: Dict[str, str], auth_string: str, lock_fd: int,
                 published: threading.Event) -> None:  # fmt: skip
        self.server = server
        self.guarded = guarded
        self.files = files
        self.directory = directory
        self.server_id = options["id"]
        self.idle_timeout = float(options["idle-timeout"])
        self.startup_timeout = float(options["startup-timeout"])
        self.auth_string = auth_string
        self.lock_fd = lock_fd
        self.published = published
        self.fingerprint: Dict[str, Any] = {"settings": {}, "salt": ""}
        self.port = 0
        self.credential_fd = -1

    def run(self) -> None:
        try:
            self._wait_until_started()
            self._publish()
            self._wait_until_told_to_stop()
            time.sleep(STOP_SECONDS)  # told to stop: uvicorn has this long to finish
            _say(f"still running {STOP_SECONDS:g} s after being told to stop: ending now")
        except BaseException as exc:  # never leave a server that nobody can find
            _say(f"watchdog failed ({type(exc).__name__}: {exc}): ending now")
        self.directory.remove_if_ours(self.server_id)
        os._exit(3)

    def _wait_until_started(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError(f"not serving after {self.startup_timeout:g} s")
            time.sleep(0.01)

    def _publish(self) -> None:
        import fcntl
        import json

        files, directory = self.files, self.directory
        version = str(_load_sibling("_options").installed_prefect_version() or "unknown")
        directory.write_private(
            files.CREDENTIAL,
            json.dumps({"id": self.server_id, "auth_string": self.auth_string}) + "\n",
        )
        # Held until this process ends: the sign of life a process of another pid
        # namespace can see (it cannot look this pid up).
        self.credential_fd = directory.open_file(files.CREDENTIAL, os.O_RDONLY)
        fcntl.flock(self.credential_fd, fcntl.LOCK_EX)
        machine = _load_sibling("_identity").here()
        record = files.Record(
            id=self.server_id, url=f"http://127.0.0.1:{self.port}/api", port=self.port,
            pid=os.getpid(), prefect_version=version, idle_timeout=self.idle_timeout,
            started_at=time.time(), python=sys.executable, boot_id=machine.boot_id,
            pid_namespace=machine.pid_namespace, hostname=machine.hostname,
            settings=dict(self.fingerprint.get("settings") or {}),
            salt=str(self.fingerprint.get("salt") or ""),
        )  # fmt: skip
        directory.write_private(files.RECORD, record.to_json())
        self.published.set()
        os.close(self.lock_fd)  # others may now find it (the start lock is released)
        self.guarded.last_request = time.monotonic()  # idle from now, not from the import
        _say(f"serving {record.url} (Prefect {version}; idle timeout {self.idle_timeout:g} s)")

    def _wait_until_told_to_stop(self) -> None:
        """Until uvicorn is told to stop (SIGTERM), or this server has been idle long
        enough and no process has a client open: then the record goes first."""
        pause = min(max(self.idle_timeout / 10, 0.1), 5.0)
        while not self.server.should_exit:
            time.sleep(pause)
            idle = time.monotonic() - self.guarded.last_request
            if self.guarded.in_flight or idle < self.idle_timeout or self.idle_timeout <= 0:
                continue
            clients = self.directory.lock(self.files.CLIENTS_LOCK, shared=False, deadline=None)
            if clients is None:
                continue  # a process still has a client open: it may call at any time
            try:
                self.directory.remove_if_ours(self.server_id)
            finally:
                os.close(clients)
            _say(f"no request for {idle:.0f} s and no client open: stopping")
            self.server.should_exit = True
            return
        self.directory.remove_if_ours(self.server_id)  # told to stop (SIGTERM)


def _serve_shared(argv: List[str]) -> None:
    import json

    os.umask(0o077)  # the database and everything else Prefect creates: this user's only
    options = _options(argv)
    auth_string = os.environ.get("PREFECT_SERVER_API_AUTH_STRING", "")
    if not auth_string:
        raise SystemExit("PREFECT_SERVER_API_AUTH_STRING is required")
    fingerprint = json.loads(os.environ.pop(FINGERPRINT_VARIABLE, "") or "{}")
    descriptors = [int(options[name]) for name in ("lock-fd", "socket-fd", "directory-fd")]
    lock_fd, socket_fd, directory_fd = descriptors
    _detach(int(options["pid-fd"]))
    for descriptor in descriptors:
        os.set_inheritable(descriptor, False)  # nothing this server starts may hold them
    os.fchdir(directory_fd)  # the checked directory: no settings file of anyone else's here
    _unshadow()
    files = _load_sibling("_files")
    identity = _load_sibling("_identity")
    directory = files.Directory(os.path.dirname(options["directory"]), directory_fd)
    server_id = options["id"]
    published = threading.Event()
    limit = float(options["startup-timeout"]) + IMPORT_MARGIN
    threading.Thread(
        target=_end_unless_published, args=(published, limit),
        name="startup deadline", daemon=True,
    ).start()  # fmt: skip
    listener = socket.socket(fileno=socket_fd)
    port = listener.getsockname()[1]

    import uvicorn

    holder: Dict[str, Guarded] = {}

    def application() -> Guarded:
        from prefect.server.api.server import create_app

        holder["app"] = Guarded(create_app(), auth_string, port, identity)
        return holder["app"]

    config = uvicorn.Config(application, factory=True, lifespan="on", log_level="error")
    config.load()  # builds the app now: the watchdog needs the middleware
    server = uvicorn.Server(config)
    watchdog = _Watchdog(server, holder["app"], files, directory, options, auth_string,
                         lock_fd, published)  # fmt: skip
    watchdog.port = port
    watchdog.fingerprint = fingerprint

    def forget() -> None:  # the record goes before anything else stops
        directory.remove_if_ours(server_id)
        _say("shutting down")

    holder["app"].on_shutdown = forget
    threading.Thread(target=watchdog.run, name="watchdog", daemon=True).start()
    try:
        server.run(sockets=[listener])
    finally:
        directory.remove_if_ours(server_id)
        _say("stopped")


def main(argv: List[str]) -> None:
    if len(argv) > 1 and argv[1] == "--shared":
        _serve_shared(argv)
    else:
        _serve_for_parent(argv)


if __name__ == "__main__":
    main(sys.argv)
