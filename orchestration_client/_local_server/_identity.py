"""Is the program behind a record really our server? Checked before any credential is sent,
before any process is signalled, and on every new connection a client opens.

* ``is_our_server(pid, directory, server_id)``: the pid is alive (not a zombie), runs as
  this user, and its command line is our server guard serving ``directory`` (compared as
  bytes: any path the file system allows), with that id. On Linux from ``/proc``,
  elsewhere from ``ps``.
* ``owns_port(pid, port)``: the pid holds the socket listening on 127.0.0.1:``port``, the
  only address a client connects to. On Linux the listening sockets' inodes come from
  ``/proc/net/tcp`` (and ``tcp6``, for a wildcard listener that could take those
  connections if ours were gone) and are looked up among ``/proc/<pid>/fd``; sockets on
  other addresses with the same port number (``[::1]``, ``127.0.0.2``, a v6-only ``[::]``)
  receive nothing of ours and do not count. Where the kernel does not say (not Linux, or a
  ``/proc`` that shows no listener on the port or hides the pid's descriptors, as some
  sandboxes do), ``proves_credential``
  asks the program on the port to prove it holds the credential: it must return
  HMAC-SHA256(credential, port + a fresh random nonce). Only the nonce is sent, never the
  credential, and a proof from another port is worthless.
* ``here()``: the machine (boot id, host name) and pid namespace of this process, which a
  record is compared with before its pid means anything.
"""

import contextlib
import hashlib
import hmac
import http.client
import os
import secrets
import socket
import struct
import subprocess
import sys
from typing import List, NamedTuple, Optional, Set, Tuple

__all__ = [
    "GUARD_NAME",
    "PROOF_PATH",
    "Here",
    "guard_arguments",
    "here",
    "is_live_server",
    "is_our_server",
    "owns_port",
    "proof",
    "proves_credential",
    "running",
    "servers_for",
]

GUARD_NAME = "_guard.py"
PROOF_PATH = "/orchestration_client/proof"
_LINUX = sys.platform.startswith("linux") and os.path.isdir("/proc/self/fd")
_LOOPBACK = f"{struct.unpack('=I', socket.inet_aton('127.0.0.1'))[0]:08X}"
# Listeners a connection to 127.0.0.1 may reach: that address, and the wildcards (IPv4, and
# IPv6 unless IPV6_V6ONLY, which /proc does not show), as /proc/net/tcp{,6} spell them.
_REACHABLE = {
    _LOOPBACK,
    "00000000",
    "0" * 32,
    "0000000000000000FFFF0000" + _LOOPBACK,
}


def proof(auth_string: str, port: int, nonce: str) -> str:
    """What the server at ``port`` answers to ``nonce``: shared by both sides."""
    message = f"orchestration_client local server\0{port}\0{nonce}".encode()
    return hmac.new(auth_string.encode("utf-8"), message, hashlib.sha256).hexdigest()


class Here(NamedTuple):
    boot_id: str
    pid_namespace: str
    hostname: str


def here() -> Here:
    """This process's kernel boot (Linux: ``/proc/sys/kernel/random/boot_id``; shared by
    every container on the machine, new at each boot), pid namespace and host name."""
    boot_id = pid_namespace = ""
    if _LINUX:
        with contextlib.suppress(OSError), open("/proc/sys/kernel/random/boot_id") as handle:
            boot_id = handle.read().strip()
        with contextlib.suppress(OSError):
            pid_namespace = os.readlink("/proc/self/ns/pid")
    return Here(boot_id, pid_namespace, socket.gethostname())


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    if _LINUX:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in (b"Z", b"X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _command_line(pid: int) -> Optional[Tuple[int, List[bytes]]]:
    """(owner uid, argv as bytes) of ``pid``, or None if it is gone or cannot be read."""
    if _LINUX:
        try:
            owner = os.stat(f"/proc/{pid}").st_uid
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            return None
        return owner, [arg for arg in argv if arg]
    try:  # macOS and the BSDs; arguments with spaces cannot be told apart here
        out = subprocess.run(
            ["ps", "-ww", "-o", "uid=", "-o", "command=", "-p", str(pid)],
            capture_output=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = out.stdout.strip().split(None, 1)
    if out.returncode != 0 or len(fields) != 2 or not fields[0].isdigit():
        return None
    return int(fields[0]), fields[1].split()


def guard_arguments(directory: str, server_id: str) -> List[str]:
    """How a shared server's command line names its directory and id (``_shared`` builds
    the command with this, ``is_our_server`` looks for it)."""
    return ["--directory", directory, "--id", server_id]


def is_our_server(pid: int, directory: str, server_id: Optional[str] = None) -> bool:
    """``pid`` is alive, ours, and is the server guard for the record in ``directory``
    (and, given ``server_id``, the server with that id)."""
    if not running(pid):
        return False
    found = _command_line(pid)
    if found is None:
        return False
    owner, argv = found
    if owner != os.geteuid():
        return False
    guard = GUARD_NAME.encode()
    if not any(os.path.basename(arg) == guard for arg in argv) or b"--shared" not in argv:
        return False
    wanted = os.fsencode(directory)
    if _LINUX:
        if _value(argv, b"--directory") != wanted:
            return False
        return server_id is None or _value(argv, b"--id") == server_id.encode()
    # ps joins the arguments with spaces: look for the directory between its neighbours.
    joined = b" " + b" ".join(argv) + b" "
    if server_id is None:
        return b" --directory " + wanted + b" --id " in joined
    return b" --directory " + wanted + b" --id " + server_id.encode() + b" " in joined


def is_live_server(pid: int, directory: str, server_id: str) -> bool:
    """Cheap enough for every new connection a client opens: ``is_our_server`` on Linux;
    elsewhere, where that takes a ``ps``, only that the pid is alive."""
    if _LINUX:
        return is_our_server(pid, directory, server_id)
    return running(pid)


def _value(argv: List[bytes], option: bytes) -> Optional[bytes]:
    index = argv.index(option) + 1 if option in argv else len(argv)
    return argv[index] if index < len(argv) else None


def _listening_inodes(port: int) -> List[Tuple[str, str]]:
    """(local address, inode) of every TCP socket listening on ``port``, IPv4 and IPv6."""
    found = []
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            with open(table) as handle:
                lines = handle.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":  # 0A: LISTEN
                continue
            address, _, hex_port = fields[1].rpartition(":")
            if int(hex_port, 16) == port:
                found.append((address, fields[9]))
    return found


def _socket_inodes(pid: int) -> Optional[Set[str]]:
    """The inodes of ``pid``'s sockets, or None if its descriptors cannot be listed."""
    inodes: Set[str] = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def owns_port(pid: int, port: int) -> Optional[bool]:
    """True if ``pid`` holds the socket listening on 127.0.0.1:``port``; False if it does not
    and another socket could take connections to that address (one on it, or a wildcard);
    None where the kernel does not say (or nothing listens there).

    While our server's listener is there (it does not set ``SO_REUSEPORT``), the kernel
    lets no other socket bind that address or a wildcard that covers it, so any other
    listener with the port number ([::1], 127.0.0.2, or [::] with ``IPV6_V6ONLY``, which
    ``/proc`` does not show) receives nothing of ours and does not count."""
    if not _LINUX:
        return None
    listeners = [(a, inode) for a, inode in _listening_inodes(port) if a in _REACHABLE]
    held = _socket_inodes(pid) if listeners else None
    if not listeners or held is None:
        return None  # nobody listens (the challenge then fails too), or /proc hides it
    return any(address == _LOOPBACK and inode in held for address, inode in listeners)


def proves_credential(port: int, auth_string: str, timeout: float = 5.0) -> bool:
    """The program on 127.0.0.1:``port`` holds ``auth_string``: it answers a fresh
    challenge with the right HMAC. The credential itself is never sent."""
    nonce = secrets.token_hex(32)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", f"{PROOF_PATH}?nonce={nonce}")
        reply = connection.getresponse()
        answer = reply.read(200).decode("ascii", "replace").strip()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return reply.status == 200 and hmac.compare_digest(answer, proof(auth_string, port, nonce))


def servers_for(directory: str) -> List[int]:
    """Every live server of ours for ``directory``, recorded or not (Linux; elsewhere an
    empty list: only the recorded one can be found)."""
    if not _LINUX:
        return []
    return [int(n) for n in os.listdir("/proc") if n.isdigit() and is_our_server(int(n), directory)]
