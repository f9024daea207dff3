"""The shared local server of a ``PREFECT_HOME``: found, or started, by ``connect()``; held
while this process has clients open; stopped by ``stop()`` or by itself when idle.

``connect()``, in order:

1. take this process's shared hold on ``clients.lock`` (the server cannot decide to stop
   while any process holds it, so a server found in step 2 stays up while clients use it);
2. read the record and believe it only if its pid is alive, runs as this user and is our
   server guard for this directory, it runs the Prefect version installed here, its
   credential file is this user's with mode 0600, and that pid owns the listening socket
   on the recorded port (``_identity``). Only then is the credential used;
3. otherwise take ``start.lock``, look again (another process may have just started one),
   stop a server of ours that cannot be used (another Prefect version, a loose
   credential), forget a dead one, and start a new one. The new server inherits the start
   lock and releases it once its record is written, so every process waiting for the lock
   (the starter included) then finds it ready; if it dies, the lock is free again.

Files and locks: ``_files``. The server process: ``_guard``.
"""

import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Dict, List, NamedTuple, Optional, Tuple

from . import _files, _identity
from ._common import LocalServer, logger
from ._options import installed_prefect_version

__all__ = ["SharedServer", "Status", "connect", "status", "stop", "stop_command"]

_GUARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), _identity.GUARD_NAME)
#: How long a stopping server may take before it is killed.
STOP_TIMEOUT = 20.0
#: On top of the startup timeout: the server process imports Prefect before its own clock runs.
_IMPORT_MARGIN = 30.0
_LOG_TAIL = 30

_process_lock = threading.RLock()


class _Hold:
    """This process's shared ``flock`` on ``clients.lock``: taken with the first client,
    dropped with the last (or when the process ends, however it ends)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.count = 0
        self.descriptor: Optional[int] = None

    def take(self, deadline: float) -> None:
        if self.count == 0:
            descriptor = _files.acquire(self.path, shared=True, deadline=deadline)
            if descriptor is None:
                raise RuntimeError(
                    f"Timed out waiting for {self.path}: a local Prefect server there kept "
                    "it while stopping"
                )
            self.descriptor = descriptor
        self.count += 1

    def give_back(self) -> None:
        self.count -= 1
        if self.count == 0 and self.descriptor is not None:
            os.close(self.descriptor)
            self.descriptor = None


_holds: Dict[str, _Hold] = {}


class SharedServer(LocalServer):
    """A client's use of the shared server. ``stop()`` ends that use; the server keeps
    running for other processes until it is idle. ``started_in`` is the seconds it took to
    start when this process started it, else None."""

    def __init__(
        self, record: _files.Record, auth_string: str, hold: _Hold, started_in: Optional[float]
    ) -> None:
        super().__init__(record.url)
        self.auth_string = auth_string
        self.record = record
        self.started_in = started_in
        self._hold = hold
        self._released = False

    def stop(self) -> None:
        with _process_lock:
            if not self._released:
                self._released = True
                self._hold.give_back()


class _Verdict(NamedTuple):
    usable: bool
    record: Optional[_files.Record]
    auth_string: Optional[str]
    ours: bool  # the record's pid is a live server of ours (stop it before replacing it)
    reason: str


def _examine(where: _files.Paths) -> _Verdict:
    record = _files.read_record(where)
    if record is None:
        return _Verdict(False, None, None, False, "no record")
    if not _identity.is_our_server(record.pid, where.directory):
        return _Verdict(False, record, None, False, f"its process {record.pid} has ended")
    installed = installed_prefect_version() or "unknown"
    if record.prefect_version != installed:
        reason = f"it runs Prefect {record.prefect_version} and Prefect {installed} is installed"
        return _Verdict(False, record, None, True, reason)
    auth_string = _files.read_credential(where, record.id)
    if auth_string is None:
        reason = "its credential file is missing, not mode 0600, or not this user's"
        return _Verdict(False, record, None, True, reason)
    owns = _identity.owns_port(record.pid, record.port)
    if owns is None:  # no socket table here: the listener must prove it has the credential
        owns = _identity.proves_credential(record.port, auth_string)
    if not owns:
        reason = f"its process does not hold the socket listening on port {record.port}"
        return _Verdict(False, record, None, True, reason)
    return _Verdict(True, record, auth_string, True, "")


def connect(home: str, idle_timeout: float, startup_timeout: float) -> SharedServer:
    """The shared server of ``home``, verified, started if need be; see the module doc."""
    where = _files.paths(home)
    deadline = time.monotonic() + startup_timeout + _IMPORT_MARGIN
    with _process_lock:
        _files.private_directory(where.directory, create=True)
        hold = _holds.setdefault(where.directory, _Hold(where.clients_lock))
        hold.take(deadline)
        try:
            verdict = _examine(where)
            started_in = None
            if not verdict.usable:
                began = time.monotonic()
                verdict, started = _start(where, idle_timeout, startup_timeout, deadline)
                started_in = time.monotonic() - began if started else None
            assert verdict.record is not None and verdict.auth_string is not None
            return SharedServer(verdict.record, verdict.auth_string, hold, started_in)
        except BaseException:
            hold.give_back()
            raise


def _start(
    where: _files.Paths, idle_timeout: float, startup_timeout: float, deadline: float
) -> Tuple[_Verdict, bool]:
    """(the usable server, whether this process started it)."""
    lock = _files.acquire(where.start_lock, shared=False, deadline=deadline)
    if lock is None:
        raise RuntimeError(_too_slow(where, "Another process kept starting"))
    try:
        verdict = _examine(where)
        if verdict.usable:
            return verdict, False
        if verdict.record is not None:
            if verdict.ours:
                logger.info("replacing the local Prefect server at %s: %s",
                            verdict.record.url, verdict.reason)  # fmt: skip
                _terminate(verdict.record.pid, where.directory)
            _files.remove_if_ours(where, None)
        _spawn(where, lock, idle_timeout, startup_timeout)
    finally:
        os.close(lock)  # the new server holds the lock too, until its record is written
    lock = _files.acquire(where.start_lock, shared=False, deadline=deadline)
    if lock is None:
        raise RuntimeError(_too_slow(where, "The local Prefect server kept starting"))
    try:
        verdict = _examine(where)
    finally:
        os.close(lock)
    if not verdict.usable:
        raise RuntimeError(
            f"The local Prefect server did not start ({verdict.reason}); the end of its "
            f"log, {where.log}:\n{_log_tail(where)}"
        )
    return verdict, True


def _spawn(where: _files.Paths, lock: int, idle_timeout: float, startup_timeout: float) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    log = _files.rotate_log(where)
    try:
        listener.bind(("127.0.0.1", 0))
        command = [
            sys.executable, _GUARD, "--shared",
            "--directory", where.directory,
            "--socket-fd", str(listener.fileno()),
            "--lock-fd", str(lock),
            "--idle-timeout", repr(idle_timeout),
            "--startup-timeout", repr(startup_timeout),
            "--id", secrets.token_hex(8),
        ]  # fmt: skip
        environment = {
            **os.environ,
            "PREFECT_HOME": where.home,
            "PREFECT_SERVER_API_AUTH_STRING": f"local:{secrets.token_urlsafe(32)}",
            "PREFECT_UI_ENABLED": "0",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        # The first process forks the server and exits at once (the server is nobody's
        # child); it reads nothing and writes to the log only.
        first = subprocess.Popen(
            command, env=environment, cwd=where.directory, stdin=subprocess.DEVNULL,
            stdout=log, stderr=log, pass_fds=(listener.fileno(), lock),
            start_new_session=True,
        )  # fmt: skip
    finally:
        listener.close()
        os.close(log)
    try:
        first.wait(timeout=60)
    except subprocess.TimeoutExpired:
        first.kill()
        first.wait()


def _too_slow(where: _files.Paths, what: str) -> str:
    return (
        f"{what} the local Prefect server in {where.directory} for longer than its startup "
        "timeout (PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS); the end of its log, "
        f"{where.log}:\n{_log_tail(where)}"
    )


def _log_tail(where: _files.Paths) -> str:
    try:
        with open(where.log, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()[-_LOG_TAIL:]
    except OSError:
        return "(no log)"
    return "\n".join(lines) or "(empty)"


def _signal(pid: int, number: int) -> None:
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, number)  # the server leads its own group: its children too
        else:
            os.kill(pid, number)
    except ProcessLookupError:
        pass


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _identity.running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _terminate(pid: int, directory: str) -> None:
    """SIGTERM the server ``pid`` (checked to be ours first), SIGKILL if it lingers."""
    if not _identity.is_our_server(pid, directory):
        return
    _signal(pid, signal.SIGTERM)
    if not _wait_gone(pid, STOP_TIMEOUT):
        _signal(pid, signal.SIGKILL)
        _wait_gone(pid, 10)


# ---- the command line's view ------------------------------------------------------------------


def stop_command(env: Optional[Dict[str, str]] = None) -> str:
    """The command that stops the shared server of this environment's ``PREFECT_HOME``."""
    home = (os.environ if env is None else env).get("PREFECT_HOME", "").strip()
    prefix = f"PREFECT_HOME={shlex.quote(home)} " if home else ""
    return f"{prefix}python -m orchestration_client server stop"


class Status(NamedTuple):
    running: bool
    record: Optional[_files.Record]
    message: str


def status(home: str) -> Status:
    """What runs for ``home``, checked as ``connect()`` checks it but without taking any
    lock, starting or stopping anything, or showing the credential."""
    where = _files.paths(home)
    if not _files.private_directory(where.directory, create=False):
        return Status(False, None, f"no local Prefect server for PREFECT_HOME={home}")
    record = _files.read_record(where)
    none = f"no local Prefect server for PREFECT_HOME={home}"
    if record is None:
        lock = _files.acquire(where.start_lock, shared=False, deadline=None)
        if lock is None:
            return Status(
                False, None, f"a local Prefect server is starting for PREFECT_HOME={home}"
            )
        os.close(lock)
        return Status(False, None, none)
    if not _identity.is_our_server(record.pid, where.directory):
        return Status(False, record, f"{none} (pid {record.pid}, recorded, has ended)")
    owns = _identity.owns_port(record.pid, record.port)
    if owns is None:  # the kernel does not say: the listener must prove it has the credential
        auth_string = _files.read_credential(where, record.id)
        owns = auth_string is not None and _identity.proves_credential(record.port, auth_string)
    if not owns:
        return Status(False, record, f"{none} (pid {record.pid}, recorded, is not listening on "
                                     f"port {record.port})")  # fmt: skip
    return Status(True, record, f"a local Prefect server is running for PREFECT_HOME={home}")


def stop(home: str, timeout: float = 60.0) -> str:
    """Stop the shared server of ``home`` (and any unrecorded server of ours for it);
    returns what was done. Waits for a server that is starting, then stops it."""
    where = _files.paths(home)
    if not _files.private_directory(where.directory, create=False):
        return f"no local Prefect server was running for PREFECT_HOME={home}"
    lock = _files.acquire(where.start_lock, shared=False, deadline=time.monotonic() + timeout)
    if lock is None:
        raise RuntimeError(_too_slow(where, "A process kept starting"))
    try:
        record = _files.read_record(where)
        stopped: List[str] = []
        if record is not None and _identity.is_our_server(record.pid, where.directory):
            _terminate(record.pid, where.directory)
            stopped.append(f"stopped the local Prefect server at {record.url} (pid {record.pid})")
        for pid in _identity.servers_for(where.directory):
            if record is None or pid != record.pid:
                _terminate(pid, where.directory)
                stopped.append(f"stopped an unrecorded local Prefect server (pid {pid})")
        _files.remove_if_ours(where, None)
    finally:
        os.close(lock)
    if stopped:
        return "\n".join(stopped)
    if record is not None:
        return (f"no local Prefect server was running for PREFECT_HOME={home} (removed the "
                f"record of pid {record.pid}, which had ended)")  # fmt: skip
    return f"no local Prefect server was running for PREFECT_HOME={home}"
