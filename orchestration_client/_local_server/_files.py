"""The shared local server's files, in ``$PREFECT_HOME/orchestration_client/`` (mode 0700):

==================  ======================================================================
``server.json``     the record: address, port, pid, Prefect version, idle timeout, id (0600)
``credential``      the id and the random auth string the server requires (0600)
``server.log``      the server's output (0600); the previous one is kept as ``server.log.1``
``start.lock``      held (``flock``, exclusive) by whoever is starting a server, and then by
                    the starting server itself until its record is written
``clients.lock``    held shared by every process with an open client of the server; the
                    server may stop when idle only if it can take it exclusively
==================  ======================================================================

Locks are ``flock`` locks: the kernel drops them when the last descriptor closes, so a
process that crashes, even by SIGKILL, never leaves a lock that blocks anyone.

The server writes the credential, then the record; it removes them (record first) when it
stops, if they are still its own (same id). Readers check the id of both.

Standard library only, no relative imports: the server process loads this file by path.
"""

import contextlib
import json
import os
import stat
import time
from typing import Any, Dict, NamedTuple, Optional, Tuple

__all__ = [
    "DIRECTORY",
    "Paths",
    "Record",
    "acquire",
    "paths",
    "private_directory",
    "read_credential",
    "read_record",
    "remove_if_ours",
    "rotate_log",
    "write_private",
]

DIRECTORY = "orchestration_client"
FORMAT = 1
_POLL = 0.02


class Paths(NamedTuple):
    home: str
    directory: str
    record: str
    credential: str
    log: str
    start_lock: str
    clients_lock: str


def paths(home: str) -> Paths:
    directory = os.path.join(home, DIRECTORY)
    return Paths(
        home=home,
        directory=directory,
        record=os.path.join(directory, "server.json"),
        credential=os.path.join(directory, "credential"),
        log=os.path.join(directory, "server.log"),
        start_lock=os.path.join(directory, "start.lock"),
        clients_lock=os.path.join(directory, "clients.lock"),
    )


class Record(NamedTuple):
    """What ``server.json`` says about a running server (never the credential)."""

    id: str
    url: str
    port: int
    pid: int
    prefect_version: str
    idle_timeout: float
    started_at: float  # time.time() when it became ready
    python: str

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **self._asdict()}, indent=1) + "\n"


def private_directory(path: str, create: bool) -> bool:
    """Make sure ``path`` is a directory owned by this user that no one else can read or
    write (0700; a looser mode is tightened). False if it does not exist and ``create`` is
    false; ``PermissionError`` naming the path if another user owns it."""
    if create:
        os.makedirs(os.path.dirname(path), exist_ok=True)  # PREFECT_HOME, as Prefect makes it
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        raise PermissionError(f"{path} must be a directory")
    if info.st_uid != os.geteuid():
        raise PermissionError(
            f"{path} belongs to another user (uid {info.st_uid}): the local server's "
            "credential would not be private there; remove it or set PREFECT_HOME"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return True


def write_private(path: str, text: str) -> None:
    """Replace ``path`` atomically with ``text``, readable by this user only (0600)."""
    temporary = f"{path}.{os.getpid()}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, text.encode("utf-8"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)


def _read_json(path: str, private: bool) -> Optional[Dict[str, Any]]:
    """The JSON object in ``path``, or None if it is missing, unreadable, malformed, or
    (``private``) not this user's own file with mode 0600."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        info = os.fstat(descriptor)
        if private and (info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) != 0o600):
            return None
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            data = handle.read(65536)
    except OSError:
        return None
    finally:
        os.close(descriptor)
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def read_record(where: Paths) -> Optional[Record]:
    """The record, or None if there is none or it cannot be trusted as written by us."""
    value = _read_json(where.record, private=True)
    if value is None or value.get("format") != FORMAT:
        return None
    try:
        record = Record(**{name: value[name] for name in Record._fields})
    except KeyError:
        return None
    number = (int, float)
    types: Tuple[Any, ...] = (str, str, int, int, str, number, number, str)
    if not all(isinstance(getattr(record, f), t) for f, t in zip(Record._fields, types)):
        return None
    if record.url != f"http://127.0.0.1:{record.port}/api" or record.pid <= 0:
        return None  # we only ever talk to 127.0.0.1
    return record


def read_credential(where: Paths, server_id: str) -> Optional[str]:
    """The auth string of server ``server_id``; None if the file is missing, is not this
    user's with mode 0600, or belongs to another server."""
    value = _read_json(where.credential, private=True)
    if value is None or value.get("id") != server_id:
        return None
    auth_string = value.get("auth_string")
    return auth_string if isinstance(auth_string, str) and auth_string else None


def remove_if_ours(where: Paths, server_id: Optional[str]) -> None:
    """Remove the record and then the credential, if they carry ``server_id`` (any id when
    None, for a record already known to be stale)."""
    for path in (where.record, where.credential):
        value = _read_json(path, private=False)
        if server_id is None or (value is not None and value.get("id") == server_id):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def rotate_log(where: Paths) -> int:
    """Keep the last server's log as ``server.log.1``; open a new one (0600) for appending."""
    with contextlib.suppress(FileNotFoundError):
        os.replace(where.log, where.log + ".1")
    descriptor = os.open(where.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(descriptor, 0o600)
    return descriptor


def acquire(path: str, shared: bool, deadline: Optional[float]) -> Optional[int]:
    """A descriptor of ``path`` holding an ``flock`` (shared or exclusive), or None if
    another holder kept it past ``deadline`` (``time.monotonic()``; None: do not wait).
    Close the descriptor to release the lock (never ``LOCK_UN``: a forked child may share
    it)."""
    import fcntl

    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
    pause = 0.002
    while True:
        try:
            fcntl.flock(descriptor, mode)
            return descriptor
        except BlockingIOError:
            if deadline is None or time.monotonic() >= deadline:
                os.close(descriptor)
                return None
        except BaseException:
            os.close(descriptor)
            raise
        time.sleep(pause)
        pause = min(pause * 2, _POLL)
