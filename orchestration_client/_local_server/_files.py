"""The shared local server's files, in ``$PREFECT_HOME/orchestration_client/`` (mode 0700):

==================  ======================================================================
``server.json``     the record: address, port, pid, Prefect version, idle timeout, id, the
                    machine and pid namespace it runs in, its settings' fingerprint (0600)
``credential``      the id and the random auth string the server requires (0600); the
                    server holds an ``flock`` on it for as long as it runs
``server.log``      the server's output (0600); the previous one is kept as ``server.log.1``
``start.lock``      held (``flock``, exclusive) by whoever is starting a server, and then by
                    the starting server itself until its record is written
``clients.lock``    held shared by every process with an open client of the server; the
                    server may stop when idle only if it can take it exclusively
==================  ======================================================================

The directory is opened once (``Directory.open``) and checked there: a real directory (not
a symbolic link), this user's, mode 0700. Every file in it is then reached through that
descriptor (``dir_fd``), never by path, and never through a symbolic link: renaming the
directory away and putting another in its place (possible for anyone who may write
``PREFECT_HOME``) cannot redirect a read or a write. New files are created with
``O_CREAT | O_EXCL | O_NOFOLLOW`` and mode 0600; files are replaced by renaming.

Locks are ``flock`` locks: the kernel drops them when the last descriptor closes, so a
process that crashes, even by SIGKILL, never leaves a lock that blocks anyone.

The server writes the credential, then the record; it removes them (record first) when it
stops, if they are still its own (same id). Readers check the id of both.

Standard library only, no relative imports: the server process loads this file by path.
"""

import contextlib
import errno
import json
import os
import secrets
import stat
import time
from typing import Any, Dict, NamedTuple, Optional, Tuple

__all__ = [
    "CLIENTS_LOCK",
    "CREDENTIAL",
    "DIRECTORY",
    "LOG",
    "RECORD",
    "START_LOCK",
    "Directory",
    "Record",
]

DIRECTORY = "orchestration_client"
RECORD = "server.json"
CREDENTIAL = "credential"
LOG = "server.log"
START_LOCK = "start.lock"
CLIENTS_LOCK = "clients.lock"
FORMAT = 2
_POLL = 0.02
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_AS_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


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
    boot_id: str  # the kernel's boot id ("" where there is none)
    pid_namespace: str  # e.g. "pid:[4026531836]" ("" where there is none)
    hostname: str
    settings: Dict[str, str]  # server setting name -> salted hash of its value
    salt: str

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **self._asdict()}, indent=1) + "\n"


_TYPES: Tuple[Any, ...] = (
    str, str, int, int, str, (int, float), (int, float), str, str, str, str, dict, str,
)  # fmt: skip


def high_descriptor(descriptor: int) -> int:
    """``descriptor`` moved to a number above 2 (close-on-exec): a process that closed its
    standard descriptors must not find a lock or a directory behind ``print``, nor hand
    one to a child where its stdin, stdout or stderr will be."""
    if descriptor > 2:
        return descriptor
    import fcntl

    try:
        return fcntl.fcntl(descriptor, fcntl.F_DUPFD_CLOEXEC, 3)
    finally:
        os.close(descriptor)


def explained(exc: OSError, what: str, home: str) -> OSError:
    """``exc`` (same type, same errno) with a message that says what the local server was
    doing, in which ``PREFECT_HOME``, and what to do about it."""
    reason = exc.strerror or str(exc)
    message = (
        f"The local Prefect server (used because no PREFECT_API_URL is set) could not "
        f"{what}: {reason}. It keeps its files in PREFECT_HOME ({home}), which must be a "
        "writable directory of yours: set PREFECT_HOME to one, or set PREFECT_API_URL to "
        "the URL of a Prefect server."
    )
    new = type(exc)(message)
    new.errno = exc.errno
    return new


def _others_may_write(info: os.stat_result, home: str) -> Optional[str]:
    """Why another user could replace files in the home ``info`` describes (the start of
    a sentence that goes on with what to do), or None: it must be this user's, and not
    writable by every user, nor by a group other than the user's private group (named
    after the user, with no other members: user private groups, umask 002)."""
    harm = "could replace the local Prefect server's database or files there"
    if info.st_uid != os.geteuid():
        return (f"belongs to another user (uid {info.st_uid}), who {harm}. Make it yours "
                f"(chown {os.geteuid()} {home})")  # fmt: skip
    if info.st_mode & stat.S_IWOTH:
        return f"is writable by every user: anyone {harm}. Make it private (chmod o-w {home})"
    if info.st_mode & stat.S_IWGRP:
        import grp
        import pwd

        try:
            group: Optional[grp.struct_group] = grp.getgrgid(info.st_gid)
        except KeyError:
            group = None
        try:
            me: Optional[str] = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            me = None
        if group is None or group.gr_name != me or group.gr_mem:
            name = group.gr_name if group is not None else f"gid {info.st_gid}"
            return (f"is writable by the group {name}, which is not your private group: its "
                    f"members {harm}. Make it private (chmod g-w {home})")  # fmt: skip
    return None


class Directory:
    """``$PREFECT_HOME/orchestration_client``, open and checked; see the module doc.
    ``key`` tells two openings of the same directory apart from a replaced one."""

    def __init__(self, home: str, descriptor: int) -> None:
        self.home = home
        self.path = os.path.join(home, DIRECTORY)
        self.fd = descriptor
        info = os.fstat(descriptor)
        self.key = (info.st_dev, info.st_ino)

    @classmethod
    def open(cls, home: str, create: bool) -> Optional["Directory"]:
        """The checked directory of ``home``, created (mode 0700, and ``home`` too if
        missing, 0700) when ``create``; None if it does not exist and not ``create``.
        ``PermissionError`` if it is not a directory or not this user's; any other
        ``OSError`` says what failed, in plain words."""
        path = os.path.join(home, DIRECTORY)
        try:
            if create:
                os.makedirs(home, mode=0o700, exist_ok=True)  # only a new home is 0700
            parent = os.open(home, os.O_RDONLY | _AS_DIRECTORY | _CLOEXEC)
        except FileNotFoundError:
            if not create:
                return None
            raise
        except OSError as exc:
            raise explained(exc, f"{'create' if create else 'open'} {home}", home) from exc
        try:
            problem = _others_may_write(os.fstat(parent), home) if create else None
            if problem:
                raise PermissionError(
                    f"PREFECT_HOME ({home}) {problem}, or set PREFECT_HOME to a directory of "
                    "your own, or set PREFECT_API_URL to the URL of a Prefect server."
                )
            if create:
                try:
                    os.mkdir(DIRECTORY, 0o700, dir_fd=parent)
                except FileExistsError:
                    pass
                except OSError as exc:
                    raise explained(exc, f"create {path}", home) from exc
            try:
                descriptor = os.open(
                    DIRECTORY, os.O_RDONLY | _AS_DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=parent
                )
            except FileNotFoundError:
                if create:
                    raise
                return None
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    raise PermissionError(
                        f"{path} must be a directory, not a symbolic link or a file: remove "
                        "it, or set PREFECT_HOME"
                    ) from None
                raise explained(exc, f"open {path}", home) from exc
        finally:
            os.close(parent)
        descriptor = high_descriptor(descriptor)
        try:
            info = os.fstat(descriptor)
            if not stat.S_ISDIR(info.st_mode):
                raise PermissionError(f"{path} must be a directory")
            if info.st_uid != os.geteuid():
                raise PermissionError(
                    f"{path} belongs to another user (uid {info.st_uid}): the local server's "
                    "credential would not be private there; remove it or set PREFECT_HOME"
                )
            if stat.S_IMODE(info.st_mode) != 0o700:
                try:
                    os.fchmod(descriptor, 0o700)
                except OSError as exc:
                    raise explained(exc, f"make {path} private (mode 0700)", home) from exc
            return cls(home, descriptor)
        except BaseException:
            os.close(descriptor)
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # ---- files ---------------------------------------------------------------------------

    def open_file(self, name: str, flags: int, check_owner: bool = True) -> int:
        """``name`` in this directory, never through a symbolic link, created 0600 if
        ``flags`` has ``O_CREAT``; a regular file of this user (``PermissionError``)."""
        try:
            descriptor = os.open(name, flags | _NOFOLLOW | _CLOEXEC, 0o600, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise PermissionError(
                f"{os.path.join(self.path, name)} is a symbolic link, which is never followed "
                "there: remove it"
            ) from None
        descriptor = high_descriptor(descriptor)
        try:
            info = os.fstat(descriptor)
            if not stat.S_ISREG(info.st_mode) or (check_owner and info.st_uid != os.geteuid()):
                raise PermissionError(f"{os.path.join(self.path, name)} is not a file of yours")
        except BaseException:
            os.close(descriptor)
            raise
        return descriptor

    def write_private(self, name: str, text: str) -> None:
        """Replace ``name`` atomically with ``text``, readable by this user only (0600)."""
        temporary = f".{name}.{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        descriptor = self.open_file(temporary, flags)
        try:
            try:
                os.fchmod(descriptor, 0o600)
                data = text.encode("utf-8")
                while data:
                    data = data[os.write(descriptor, data) :]
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.replace(temporary, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=self.fd)
            raise

    def read_json(self, name: str, private: bool) -> Optional[Dict[str, Any]]:
        """The JSON object in ``name``, or None if it is missing, unreadable, malformed,
        or (``private``) not this user's own file with mode 0600."""
        try:
            descriptor = self.open_file(name, os.O_RDONLY, check_owner=private)
        except OSError:
            return None
        try:
            info = os.fstat(descriptor)
            if private and stat.S_IMODE(info.st_mode) != 0o600:
                return None
            data = os.read(descriptor, 65536)
        except OSError:
            return None
        finally:
            os.close(descriptor)
        try:
            value = json.loads(data)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)

    def open_log(self) -> int:
        """Keep the last server's log as ``server.log.1``; a new ``server.log`` (0600) open
        for appending."""
        with contextlib.suppress(FileNotFoundError):
            os.replace(LOG, LOG + ".1", src_dir_fd=self.fd, dst_dir_fd=self.fd)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
        for _ in range(3):
            try:
                return self.open_file(LOG, flags)
            except FileExistsError:  # another starter's, just made: ours replaces it
                self.remove(LOG)
        return self.open_file(LOG, flags)

    def log_tail(self, lines: int) -> str:
        try:
            descriptor = self.open_file(LOG, os.O_RDONLY)
        except OSError:
            return "(no log)"
        try:
            size = os.fstat(descriptor).st_size
            os.lseek(descriptor, max(0, size - 65536), os.SEEK_SET)
            data = os.read(descriptor, 65536)
        except OSError:
            return "(no log)"
        finally:
            os.close(descriptor)
        kept = data.decode("utf-8", "replace").splitlines()[-lines:]
        return "\n".join(kept) or "(empty)"

    # ---- the record and the credential ---------------------------------------------------

    def read_record(self) -> Optional[Record]:
        """The record, or None if there is none or it cannot be trusted as written by us."""
        value = self.read_json(RECORD, private=True)
        if value is None or value.get("format") != FORMAT:
            return None
        try:
            record = Record(**{name: value[name] for name in Record._fields})
        except KeyError:
            return None
        if not all(isinstance(getattr(record, f), t) for f, t in zip(Record._fields, _TYPES)):
            return None
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in record.settings.items()):
            return None
        if record.url != f"http://127.0.0.1:{record.port}/api" or record.pid <= 0:
            return None  # we only ever talk to 127.0.0.1
        return record

    def read_credential(self, server_id: str) -> Optional[str]:
        """The auth string of server ``server_id``; None if the file is missing, is not
        this user's with mode 0600, or belongs to another server."""
        value = self.read_json(CREDENTIAL, private=True)
        if value is None or value.get("id") != server_id:
            return None
        auth_string = value.get("auth_string")
        return auth_string if isinstance(auth_string, str) and auth_string else None

    def credential_held(self, server_id: str) -> Optional[bool]:
        """Whether the server ``server_id`` still holds its credential file locked (it does
        for as long as it runs, wherever it runs on this kernel); None if the file is gone
        or is another server's."""
        import fcntl

        value = self.read_json(CREDENTIAL, private=True)
        if value is None or value.get("id") != server_id:
            return None
        try:
            descriptor = self.open_file(CREDENTIAL, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(descriptor)

    def remove_if_ours(self, server_id: Optional[str]) -> None:
        """Remove the record and then the credential, if they carry ``server_id`` (any id
        when None, for a record already known to be stale)."""
        for name in (RECORD, CREDENTIAL):
            value = self.read_json(name, private=False)
            if server_id is None or (value is not None and value.get("id") == server_id):
                self.remove(name)

    # ---- locks ---------------------------------------------------------------------------

    def lock(self, name: str, shared: bool, deadline: Optional[float]) -> Optional[int]:
        """A descriptor of ``name`` holding an ``flock`` (shared or exclusive), or None if
        another holder kept it past ``deadline`` (``time.monotonic()``; None: do not wait).
        Close the descriptor to release the lock (never ``LOCK_UN``: a forked child may
        share it)."""
        import fcntl

        try:
            descriptor = self.open_file(name, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            if exc.errno is None:  # not a file of this user's: said as is
                raise
            path = os.path.join(self.path, name)
            raise explained(exc, f"open {path}", self.home) from exc
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
