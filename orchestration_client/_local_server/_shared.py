"""The shared local server of a ``PREFECT_HOME``: found, or started, by ``connect()``; held
while this process has clients open; stopped by ``stop()`` or by itself when idle.

``connect()``, in order:

1. open and check ``$PREFECT_HOME/orchestration_client`` once (``_files.Directory``: every
   file below is reached through that descriptor), and take this process's shared hold on
   ``clients.lock`` (the server cannot decide to stop while any process holds it, so a
   server found in step 2 stays up while clients use it);
2. read the record. A record written on another machine, or in another pid namespace of
   this one (a container sharing the directory), names a pid that means nothing here: if
   that server still runs (on this kernel: it still holds its credential file locked) the
   call fails, saying so, rather than start a second server on the same database; one
   left from an earlier boot of this host is stale. Otherwise the record is believed only
   if its pid is alive, runs as this user and is our server guard for this directory and
   id, its credential file is this user's with mode 0600, and that pid owns the socket
   listening on 127.0.0.1 at the recorded port (``_identity``). Only then is the
   credential used;
3. otherwise take ``start.lock``, look again (another process may have just started one)
   and decide: a dead server is forgotten; one whose credential may be known to others is
   stopped at once; one that runs another Prefect version or other server settings is
   replaced only when no other client uses it (``clients.lock`` free), else it is used
   anyway (another version: the client speaks to every Prefect 3 server) or this process
   gets a server of its own (other settings: ``Fallback``); a newer Prefect than the one
   installed here is kept, since an older Prefect cannot open a database a newer one has
   upgraded. A new server inherits the start lock and releases it once its record is
   written, so every process waiting for the lock (the starter included) then finds it
   ready. The starter learns the new server's pid at once and ends it if it is not ready
   in time or cannot be used: a failed start never leaves a server running.

Every client of the shared server checks each new connection it opens
(``SharedServer.check_connection``): before connecting, that the server's process still
runs; after, that it still holds the listening socket. A client whose server was stopped
fails at once, naming it, and sends nothing to whatever program took the port.

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
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple, Union

from . import _files, _identity
from ._common import LocalServer, logger
from ._options import (
    differing_settings,
    fingerprint,
    installed_prefect_version,
    newer,
    server_environment,
)

__all__ = ["Fallback", "SharedServer", "Status", "connect", "status", "stop", "stop_command"]

_GUARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), _identity.GUARD_NAME)
#: How long a stopping server may take before it is killed.
STOP_TIMEOUT = 20.0
#: On top of the startup timeout: the server process imports Prefect before its own clock
#: runs (the server ends itself after the same margin: ``_guard.IMPORT_MARGIN``).
_IMPORT_MARGIN = 30.0
_LOG_TAIL = 30
_FINGERPRINT_VARIABLE = "ORCHESTRATION_CLIENT_SERVER_FINGERPRINT"
_MIGRATION_CLASH = "Can't locate revision"

_process_lock = threading.RLock()


class _Hold:
    """This process's shared ``flock`` on ``clients.lock``: taken with the first client,
    dropped with the last (or when the process ends, however it ends)."""

    def __init__(self) -> None:
        self.count = 0
        self.descriptor: Optional[int] = None

    def take(self, directory: _files.Directory, deadline: float) -> None:
        if self.count == 0:
            self._lock(directory, deadline)
        self.count += 1

    def give_back(self) -> None:
        self.count -= 1
        if self.count == 0 and self.descriptor is not None:
            os.close(self.descriptor)
            self.descriptor = None

    def exclusive(self, directory: _files.Directory) -> Optional[int]:
        """``clients.lock`` held exclusively, if no client but the one being made holds the
        server (this process's own hold is set aside meanwhile: ``restore()`` takes it
        back); None, with the hold as it was, if any other client holds it."""
        if self.count != 1 or self.descriptor is None:
            return None  # this process has other clients: it uses the server itself
        os.close(self.descriptor)
        self.descriptor = None
        held: Optional[int] = None
        try:
            held = directory.lock(_files.CLIENTS_LOCK, shared=False, deadline=None)
        finally:
            if held is None:
                self._lock(directory, time.monotonic() + STOP_TIMEOUT)
        return held

    def restore(self, directory: _files.Directory, held: int) -> None:
        os.close(held)
        self._lock(directory, time.monotonic() + STOP_TIMEOUT)

    def _lock(self, directory: _files.Directory, deadline: float) -> None:
        descriptor = directory.lock(_files.CLIENTS_LOCK, shared=True, deadline=deadline)
        if descriptor is None:
            raise RuntimeError(
                f"Timed out waiting for {os.path.join(directory.path, _files.CLIENTS_LOCK)}: "
                "a local Prefect server there kept it while stopping"
            )
        self.descriptor = descriptor


_holds: Dict[Tuple[int, int], _Hold] = {}


class SharedServer(LocalServer):
    """A client's use of the shared server. ``stop()`` ends that use; the server keeps
    running for other processes until it is idle. ``started_in`` is the seconds it took to
    start when this process started it, else None; ``note`` says why a server that is not
    quite what this process would start is used all the same."""

    def __init__(self, record: _files.Record, auth_string: str, hold: _Hold, directory: str,
                 started_in: Optional[float], note: Optional[str]) -> None:  # fmt: skip
        super().__init__(record.url)
        self.auth_string = auth_string
        self.record = record
        self.started_in = started_in
        self.note = note
        self._directory = directory
        self._hold = hold
        self._released = False

    def stop(self) -> None:
        with _process_lock:
            if not self._released:
                self._released = True
                self._hold.give_back()

    def check_connection(self, sock: Optional[socket.socket]) -> Optional[str]:
        """Called by the client before it opens a new connection (``sock`` None) and once
        it is open, before anything is sent on it: None if the server is still the one
        this client verified, else why not (the connection is then not used)."""
        record = self.record
        if sock is not None:
            try:
                peer = sock.getpeername()[:2]
            except OSError:
                peer = None
            if (
                peer == ("127.0.0.1", record.port)
                and _identity.owns_port(record.pid, record.port) is False
            ):
                return (
                    f"the program listening on 127.0.0.1:{record.port} is not the local "
                    f"Prefect server this client was using (pid {record.pid}); nothing was "
                    f"sent to it. {_AGAIN}"
                )
        if not _identity.is_live_server(record.pid, self._directory, record.id):
            return (
                f"the local Prefect server this client was using ({record.url}, pid "
                f"{record.pid}) is no longer running: it was stopped ({stop_command()}) or "
                f"it ended; nothing was sent. {_AGAIN}"
            )
        return None


_AGAIN = (
    "Call get_client() again for a client of the local server running now (it starts one "
    "if none runs)."
)


class Fallback(NamedTuple):
    """The shared server cannot serve this process (other server settings, and other
    clients use it): the caller should give this process a server of its own."""

    reason: str


class _Verdict(NamedTuple):
    kind: str  # usable, none, dead, elsewhere, untrusted, foreign, unverified, version, settings
    record: Optional[_files.Record]
    auth_string: Optional[str]
    reason: str


def _examine(directory: _files.Directory, settings: Mapping[str, str]) -> _Verdict:
    record = directory.read_record()
    if record is None:
        return _Verdict("none", None, None, "no record")
    machine = _identity.here()
    if (record.boot_id, record.pid_namespace) != (machine.boot_id, machine.pid_namespace):
        return _elsewhere(directory, record, machine)
    if not _identity.is_our_server(record.pid, directory.path, record.id):
        return _Verdict("dead", record, None, f"its process {record.pid} has ended")
    auth_string = directory.read_credential(record.id)
    if auth_string is None:
        reason = ("its credential file is missing, not this user's, or was made readable by "
                  "others: the credential may be known to others")  # fmt: skip
        return _Verdict("untrusted", record, None, reason)
    owns = _identity.owns_port(record.pid, record.port)
    if owns is False:
        reason = f"its process does not hold the socket listening on 127.0.0.1:{record.port}"
        return _Verdict("foreign", record, None, reason)
    # No socket table here (or none that shows the port: another network namespace, a
    # sandbox): the listener must prove it has the credential.
    if owns is None and not _identity.proves_credential(record.port, auth_string):
        reason = (f"it cannot be reached or verified from this process on 127.0.0.1:"
                  f"{record.port} (another network namespace or sandbox?)")  # fmt: skip
        return _Verdict("unverified", record, None, reason)
    installed = installed_prefect_version() or "unknown"
    if record.prefect_version != installed:
        reason = f"it runs Prefect {record.prefect_version} and Prefect {installed} is installed"
        return _Verdict("version", record, auth_string, reason)
    different = differing_settings(record.settings, record.salt, settings)
    if different:
        verb = "differs" if len(different) == 1 else "differ"
        reason = f"it runs with other server settings ({', '.join(different)} {verb})"
        return _Verdict("settings", record, auth_string, reason)
    return _Verdict("usable", record, auth_string, "")


def _elsewhere(
    directory: _files.Directory, record: _files.Record, machine: _identity.Here
) -> _Verdict:
    """The verdict on a record written on another machine or in another pid namespace."""
    if record.boot_id == machine.boot_id:  # this kernel: its locks tell whether it runs
        if not directory.credential_held(record.id):
            reason = f"its process {record.pid}, of another pid namespace, has ended"
            return _Verdict("dead", record, None, reason)
        where = ("runs in another pid namespace of this machine (another container, or "
                 f"the host; pid {record.pid} there)")  # fmt: skip
    elif record.hostname == machine.hostname and record.boot_id and machine.boot_id:
        return _Verdict("dead", record, None, "it was started before this machine last booted")
    else:
        where = f"runs on another host, {record.hostname!r} (pid {record.pid} there), or did"
    return _Verdict("elsewhere", record, None, where)


def _elsewhere_message(directory: _files.Directory, verdict: _Verdict) -> str:
    return (
        f"The local Prefect server of PREFECT_HOME={directory.home} {verdict.reason}: it "
        "cannot be used or replaced from here (a second server would share its database). "
        "Set PREFECT_API_URL to a Prefect server this process can reach, or give this "
        "process a PREFECT_HOME of its own. If that server is no longer running, remove "
        f"{os.path.join(directory.path, _files.RECORD)}."
    )


class _Wanted(NamedTuple):
    idle_timeout: float
    startup_timeout: float
    settings: Mapping[str, str]


def connect(
    home: str, idle_timeout: float, startup_timeout: float,
    settings: Optional[Mapping[str, str]] = None,
) -> Union[SharedServer, Fallback]:  # fmt: skip
    """The shared server of ``home``, verified, started if need be; see the module doc.
    ``settings``: this process's server settings (name: value), which the server must run
    with (and is started with)."""
    wanted = _Wanted(idle_timeout, startup_timeout, dict(settings or {}))
    deadline = time.monotonic() + startup_timeout + _IMPORT_MARGIN
    with _process_lock:
        directory = _files.Directory.open(home, create=True)
        assert directory is not None
        try:
            hold = _holds.setdefault(directory.key, _Hold())
            try:
                hold.take(directory, deadline)
            except OSError as exc:
                raise _files.explained(exc, f"lock {directory.path}", home) from exc
            try:
                verdict = _examine(directory, wanted.settings)
                if verdict.kind == "elsewhere":
                    raise RuntimeError(_elsewhere_message(directory, verdict))
                if verdict.kind == "usable":
                    return _shared(verdict, hold, directory, None, None)
                outcome = _start(directory, hold, wanted, deadline)
                if isinstance(outcome, Fallback):
                    hold.give_back()
                return outcome
            except BaseException:
                hold.give_back()
                raise
        finally:
            directory.close()


def _shared(verdict: _Verdict, hold: _Hold, directory: _files.Directory,
            started_in: Optional[float], note: Optional[str]) -> SharedServer:  # fmt: skip
    assert verdict.record is not None and verdict.auth_string is not None
    return SharedServer(verdict.record, verdict.auth_string, hold, directory.path,
                        started_in, note)  # fmt: skip


def _start(
    directory: _files.Directory, hold: _Hold, wanted: _Wanted, deadline: float
) -> Union[SharedServer, Fallback]:
    first = directory.lock(_files.START_LOCK, shared=False, deadline=deadline)
    if first is None:
        raise RuntimeError(_too_slow(directory, "Another process kept starting"))
    lock = [first]  # the start lock; handed to a new server and taken again meanwhile
    stopped_once = False
    try:
        for _ in range(4):
            verdict = _examine(directory, wanted.settings)
            record = verdict.record
            if verdict.kind == "usable":
                return _shared(verdict, hold, directory, None, None)
            if verdict.kind == "elsewhere":
                raise RuntimeError(_elsewhere_message(directory, verdict))
            if verdict.kind in ("none", "dead"):
                if record is not None:
                    directory.remove_if_ours(None)  # stale
                began = time.monotonic()
                try:
                    started = _start_new(directory, lock, wanted, deadline)
                except _StoppedWhileStarting as stopped:
                    if stopped_once:
                        raise RuntimeError(str(stopped)) from None
                    stopped_once = True  # `server stop` won the race: start once more
                    logger.info("%s; starting another", stopped)
                    continue
                return _shared(started, hold, directory, time.monotonic() - began, None)
            assert record is not None
            if verdict.kind == "untrusted":  # stopped even if in use: its credential may be known
                logger.warning("stopping the local Prefect server at %s: %s",
                               record.url, verdict.reason)  # fmt: skip
                _terminate(record.pid, directory.path, record.id)
                directory.remove_if_ours(record.id)
                continue
            # foreign, unverified, version, settings: replaced only if no client uses it.
            installed = installed_prefect_version() or "unknown"
            if verdict.kind == "version" and newer(installed, record.prefect_version) is False:
                note = (f"It runs Prefect {record.prefect_version}, newer than the "
                        f"{installed} installed here; it is kept, since Prefect {installed} "
                        "cannot open a database that a newer Prefect has upgraded.")  # fmt: skip
                return _shared(verdict, hold, directory, None, note)
            held = hold.exclusive(directory)
            if held is None:  # other clients use it: it stays
                again = _examine(directory, wanted.settings)
                if again.kind != verdict.kind or again.record != record:
                    continue  # it changed meanwhile: look again
                if verdict.kind == "version":
                    note = (f"It runs Prefect {record.prefect_version}, not the {installed} "
                            "installed here, and other scripts are using it; once none is, "
                            f"the next script replaces it with Prefect {installed}.")  # fmt: skip
                    return _shared(verdict, hold, directory, None, note)
                reason = verdict.reason
                reason = reason[3:] if reason.startswith("it ") else reason
                reason = reason.replace("its process", "whose process", 1)
                return Fallback(
                    f"the shared local Prefect server at {record.url} (pid {record.pid}) "
                    f"{reason}, and other scripts are using it"
                )
            try:
                logger.info("replacing the local Prefect server at %s: %s",
                            record.url, verdict.reason)  # fmt: skip
                _terminate(record.pid, directory.path, record.id)
                directory.remove_if_ours(record.id)
            finally:
                hold.restore(directory, held)
        raise RuntimeError(
            f"The local Prefect server of PREFECT_HOME={directory.home} kept changing while "
            "this process looked at it; try again"
        )
    finally:
        if lock[0] >= 0:
            os.close(lock[0])


def _start_new(
    directory: _files.Directory, lock: List[int], wanted: _Wanted, deadline: float
) -> _Verdict:
    """Start a server, handing it the start lock (``lock[0]``), and wait until it is ready
    and has given the lock back (``lock[0]`` is then this process's again); its verdict.
    The new server is ended on any failure."""
    pid, server_id = _spawn(directory, lock[0], wanted, deadline)
    try:
        os.close(lock[0])  # the server holds it (a copy) until its record is written
        lock[0] = -1
        again = directory.lock(_files.START_LOCK, shared=False, deadline=deadline)
        if again is None:
            raise RuntimeError(
                f"The local Prefect server in {directory.path} was not serving within its "
                f"startup timeout ({wanted.startup_timeout:g} s, "
                f"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, and {_IMPORT_MARGIN:g} s for "
                "its imports), and was ended; the end of its log, "
                f"{os.path.join(directory.path, _files.LOG)}:\n{directory.log_tail(_LOG_TAIL)}"
            )
        lock[0] = again
        verdict = _examine(directory, wanted.settings)
        # What this process starts is what it wants, even if its version reads differently.
        if verdict.kind in ("version", "settings") and verdict.record is not None and \
                verdict.record.id == server_id:  # fmt: skip
            verdict = verdict._replace(kind="usable")
        if verdict.kind in ("none", "dead") and f"[{pid}]: serving " in directory.log_tail(
            _LOG_TAIL
        ):  # it served, and its record is gone: stopped before this process got the lock
            raise _StoppedWhileStarting(
                f"The local Prefect server this process started (pid {pid}) was stopped "
                f"({stop_command()}, or a signal) while it was starting, before this process "
                "could use it"
            )
        if verdict.kind != "usable":
            raise RuntimeError(_did_not_start(directory, verdict))
        return verdict
    except BaseException:
        _end(pid, directory, server_id)
        raise


class _StoppedWhileStarting(Exception):
    """The server this process started served, and was stopped before it was used."""


def _above_2(descriptor: int) -> int:
    """A copy of ``descriptor`` numbered 3 or more, for a child: numbers 0 to 2 are the
    child's stdin, stdout and stderr, which would replace it (if this process had closed
    its own, a lock or a socket may have got one of those numbers)."""
    import fcntl

    return fcntl.fcntl(descriptor, fcntl.F_DUPFD_CLOEXEC, 3)


def _spawn(
    directory: _files.Directory, lock: int, wanted: _Wanted, deadline: float
) -> Tuple[int, str]:
    """Start a server process; (its pid, its id)."""
    server_id = secrets.token_hex(8)
    salt = secrets.token_hex(16)
    passed: List[int] = []
    reader = -1
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        reader, writer = os.pipe()
        passed.append(writer)
        log = directory.open_log()
        passed.append(log)
        for descriptor in (listener.fileno(), lock, directory.fd, writer):
            passed.append(_above_2(descriptor))
        sock, start_lock, folder, pid_out = passed[-4:]
        command = [
            sys.executable, _GUARD, "--shared",
            *_identity.guard_arguments(directory.path, server_id),
            "--directory-fd", str(folder),
            "--socket-fd", str(sock),
            "--lock-fd", str(start_lock),
            "--pid-fd", str(pid_out),
            "--idle-timeout", repr(wanted.idle_timeout),
            "--startup-timeout", repr(wanted.startup_timeout),
        ]  # fmt: skip
        import json

        environment = server_environment(
            {
                **wanted.settings,
                "PREFECT_HOME": directory.home,
                "PREFECT_SERVER_API_AUTH_STRING": f"local:{secrets.token_urlsafe(32)}",
                "PREFECT_UI_ENABLED": "0",
                "PREFECT_SERVER_UI_ENABLED": "false",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT__SERVER_EPHEMERAL": "1",
                "PREFECT__SERVER_FINAL": "1",
                _FINGERPRINT_VARIABLE: json.dumps(
                    {"salt": salt, "settings": fingerprint(wanted.settings, salt)}
                ),
            }
        )
        # The first process forks the server, writes its pid and exits at once (the server
        # is nobody's child); it reads nothing and writes to the log only. The server
        # changes to its directory through the descriptor it is given.
        first = subprocess.Popen(
            command, env=environment, cwd="/", stdin=subprocess.DEVNULL,
            stdout=log, stderr=log, pass_fds=(sock, start_lock, folder, pid_out),
            start_new_session=True,
        )  # fmt: skip
    except BaseException:
        if reader >= 0:
            os.close(reader)
        raise
    finally:
        listener.close()
        for descriptor in passed:
            os.close(descriptor)
    answer = ""
    try:
        answer = _read_all(reader, deadline)
    finally:
        os.close(reader)
        try:
            first.wait(timeout=10 if answer else 0)
        except subprocess.TimeoutExpired:  # stuck before it could fork: it is ours to end
            first.kill()
            first.wait()
    if not answer.strip().isdigit():
        raise RuntimeError(
            "The local Prefect server's process did not start; the end of its log, "
            f"{os.path.join(directory.path, _files.LOG)}:\n{directory.log_tail(_LOG_TAIL)}"
        )
    return int(answer), server_id


def _read_all(descriptor: int, deadline: float) -> str:
    import select

    data = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([descriptor], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(descriptor, 64)
        if not chunk:
            break
        data += chunk
    return data.decode("ascii", "replace")


def _end(pid: int, directory: _files.Directory, server_id: str) -> None:
    """End a server this process started that is not usable, and forget it."""
    _terminate(pid, directory.path, server_id, grace=5.0)
    directory.remove_if_ours(server_id)


def _did_not_start(directory: _files.Directory, verdict: _Verdict) -> str:
    tail = directory.log_tail(_LOG_TAIL)
    log = os.path.join(directory.path, _files.LOG)
    if _MIGRATION_CLASH in tail:
        installed = installed_prefect_version() or "installed here"
        return (
            f"The local Prefect server did not start: Prefect {installed} cannot open the "
            f"database in PREFECT_HOME={directory.home}, which a newer Prefect has upgraded "
            "(its migration history names a revision this Prefect does not know). Install "
            "that newer Prefect here, or use another PREFECT_HOME, or set PREFECT_API_URL to "
            f"a Prefect server. The end of its log, {log}:\n{tail}"
        )
    return (
        f"The local Prefect server did not start ({verdict.reason}); the end of its log, "
        f"{log}:\n{tail}"
    )


def _too_slow(directory: _files.Directory, what: str) -> str:
    return (
        f"{what} the local Prefect server in {directory.path} for longer than its startup "
        "timeout (PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS); the end of its log, "
        f"{os.path.join(directory.path, _files.LOG)}:\n{directory.log_tail(_LOG_TAIL)}"
    )


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


def _terminate(
    pid: int, directory: str, server_id: Optional[str] = None, grace: float = STOP_TIMEOUT
) -> None:
    """SIGTERM the server ``pid`` (checked to be ours first), SIGKILL if it lingers."""
    if not _identity.is_our_server(pid, directory, server_id):
        return
    _signal(pid, signal.SIGTERM)
    if not _wait_gone(pid, grace):
        _signal(pid, signal.SIGKILL)
        _wait_gone(pid, 10)


# ---- the command line's view ------------------------------------------------------------------


def stop_command(env: Optional[Mapping[str, str]] = None) -> str:
    """The command that stops the shared server of this environment's ``PREFECT_HOME``,
    runnable as printed: this interpreter by its full path, not whatever ``python`` is."""
    home = (os.environ if env is None else env).get("PREFECT_HOME", "").strip()
    prefix = f"PREFECT_HOME={shlex.quote(home)} " if home else ""
    return f"{prefix}{shlex.quote(sys.executable or 'python')} -m orchestration_client server stop"


class Status(NamedTuple):
    running: bool
    record: Optional[_files.Record]
    message: str


def status(home: str) -> Status:
    """What runs for ``home``, checked as ``connect()`` checks it but without taking any
    lock, starting or stopping anything, or showing the credential."""
    none = f"no local Prefect server for PREFECT_HOME={home}"
    directory = _files.Directory.open(home, create=False)
    if directory is None:
        return Status(False, None, none)
    try:
        record = directory.read_record()
        if record is None:
            lock = directory.lock(_files.START_LOCK, shared=False, deadline=None)
            if lock is None:
                return Status(
                    False, None, f"a local Prefect server is starting for PREFECT_HOME={home}"
                )
            os.close(lock)
            return Status(False, None, none)
        machine = _identity.here()
        if (record.boot_id, record.pid_namespace) != (machine.boot_id, machine.pid_namespace):
            verdict = _elsewhere(directory, record, machine)
            if verdict.kind == "dead":
                return Status(False, record, f"{none} (pid {record.pid}, recorded: "
                                             f"{verdict.reason})")  # fmt: skip
            return Status(False, record, f"the local Prefect server for PREFECT_HOME={home} "
                                         f"{verdict.reason}: not usable from here")  # fmt: skip
        if not _identity.is_our_server(record.pid, directory.path, record.id):
            return Status(False, record, f"{none} (pid {record.pid}, recorded, has ended)")
        owns = _identity.owns_port(record.pid, record.port)
        if owns is None:  # the kernel does not say: the listener must prove it has the credential
            auth_string = directory.read_credential(record.id)
            owns = auth_string is not None and _identity.proves_credential(record.port, auth_string)
        if not owns:
            return Status(False, record, f"{none} (pid {record.pid}, recorded, is not "
                                         f"listening on port {record.port})")  # fmt: skip
        return Status(True, record, f"a local Prefect server is running for PREFECT_HOME={home}")
    finally:
        directory.close()


def stop(home: str, timeout: float = 60.0) -> str:
    """Stop the shared server of ``home`` (and any unrecorded server of ours for it);
    returns what was done. Waits for a server that is starting, then stops it.
    ``RuntimeError`` for a server that runs on another host or pid namespace."""
    directory = _files.Directory.open(home, create=False)
    if directory is None:
        return f"no local Prefect server was running for PREFECT_HOME={home}"
    try:
        lock = directory.lock(_files.START_LOCK, shared=False, deadline=time.monotonic() + timeout)
        if lock is None:
            raise RuntimeError(_too_slow(directory, "A process kept starting"))
        try:
            return _stop_locked(directory)
        finally:
            os.close(lock)
    finally:
        directory.close()


def _stop_locked(directory: _files.Directory) -> str:
    home = directory.home
    record = directory.read_record()
    stopped: List[str] = []
    machine = _identity.here()
    if record is not None and (record.boot_id, record.pid_namespace) != (
        machine.boot_id, machine.pid_namespace,
    ):  # fmt: skip
        verdict = _elsewhere(directory, record, machine)
        if verdict.kind == "elsewhere":
            raise RuntimeError(
                f"The local Prefect server of PREFECT_HOME={home} {verdict.reason}: stop it "
                "there. If it is no longer running, remove "
                f"{os.path.join(directory.path, _files.RECORD)}."
            )
    elif record is not None and _identity.is_our_server(record.pid, directory.path, record.id):
        _terminate(record.pid, directory.path, record.id)
        stopped.append(f"stopped the local Prefect server at {record.url} (pid {record.pid})")
    for pid in _identity.servers_for(directory.path):
        if record is None or pid != record.pid:
            _terminate(pid, directory.path)
            stopped.append(f"stopped an unrecorded local Prefect server (pid {pid})")
    directory.remove_if_ours(None)
    if stopped:
        return "\n".join(stopped)
    if record is not None:
        return (f"no local Prefect server was running for PREFECT_HOME={home} (removed the "
                f"record of pid {record.pid}, which had ended)")  # fmt: skip
    return f"no local Prefect server was running for PREFECT_HOME={home}"
