"""A raw HTTP/1.1 server on 127.0.0.1 whose replies are written byte by byte, for replies
no well-behaved server sends: interim 1xx replies, slow drips, endless or bomb bodies,
resets and stalls in the middle of a body, redirects elsewhere. Stdlib only, so the
benchmarks can import the same scenarios.

Each request takes the next scenario from ``script`` (or ``fallback``). A scenario is a
callable ``(exchange) -> bool`` that writes the reply on ``exchange.sock`` and returns
whether the connection stays open for the next request. Every request is recorded in
``seen``, with the number of the connection it came on.
"""

import contextlib
import functools
import gzip
import json
import pathlib
import socket
import ssl
import subprocess
import threading
import time
import zlib
from typing import Callable, Dict, List, Optional

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures"


class Exchange:
    """One request as received, and the socket to answer on."""

    def __init__(self, sock: socket.socket, method: str, path: str, headers: Dict[str, str],
                 body: bytes, connection: int, stop: threading.Event) -> None:
        self.sock, self.method, self.path, self.headers = sock, method, path, headers
        self.body, self.connection, self.stop = body, connection, stop

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


Scenario = Callable[[Exchange], bool]


def head(status: int, headers: Optional[Dict[str, str]] = None, reason: str = "") -> bytes:
    lines = [f"HTTP/1.1 {status} {reason or 'Reason'}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def reply(status: int = 200, body: bytes = b'"3.9.1"', **headers: str) -> Scenario:
    """A plain reply with Content-Length; the connection stays open."""
    fields = {"Content-Type": "application/json", "Content-Length": str(len(body)),
              **{k.replace("_", "-"): v for k, v in headers.items()}}

    def scenario(exchange: Exchange) -> bool:
        exchange.send(head(status, fields) + body)
        return True

    return scenario


def interim_then(final: Scenario, *codes: int) -> Scenario:
    """Interim replies (default ``103 Early Hints``) before ``final``."""

    def scenario(exchange: Exchange) -> bool:
        for code in codes or (103,):
            exchange.send(head(code, {"Link": "</hints.css>; rel=preload"}, "Early Hints"))
        return final(exchange)

    return scenario


def task_run_json(run_id: str) -> bytes:
    run = json.loads((FIXTURES / "task_run_created.json").read_text())
    run["id"] = run_id
    return json.dumps(run).encode()


def echo_task_run(delay: float = 0.0) -> Scenario:
    """``GET .../task_runs/<id>`` answered with a task run carrying that id, after
    ``delay`` seconds (longer for ids starting ``"00000000"``: 1 s), so replies overlap."""

    def scenario(exchange: Exchange) -> bool:
        run_id = exchange.path.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
        wait = 1.0 if run_id.startswith("00000000") else delay
        if wait:
            exchange.stop.wait(wait)
        return reply(200, task_run_json(run_id))(exchange)

    return scenario


def slow_drip(body: bytes = b'"3.9.1"', every: float = 0.2, whole: bool = False) -> Scenario:
    """The whole head at once, then the body one byte every ``every`` seconds (with
    ``whole``, the head too is dripped)."""

    def scenario(exchange: Exchange) -> bool:
        start = head(200, {"Content-Length": str(len(body))})
        if not whole:
            exchange.send(start)
        for byte in start + body if whole else body:
            if exchange.stop.wait(every):
                return False
            exchange.send(bytes([byte]))
        return True

    return scenario


def endless_chunked(total: int = 400 * 1024 * 1024, chunk: int = 1024 * 1024) -> Scenario:
    """A chunked body of ``total`` bytes (400 MB by default), or until the client leaves."""

    def scenario(exchange: Exchange) -> bool:
        exchange.send(head(200, {"Transfer-Encoding": "chunked"}))
        piece = f"{chunk:x}\r\n".encode() + b"a" * chunk + b"\r\n"
        for _ in range(total // chunk):
            exchange.send(piece)
        exchange.send(b"0\r\n\r\n")
        return True

    return scenario


@functools.cache
def bomb_bytes(decoded: int) -> bytes:
    """gzip of ``decoded`` zero bytes (400 MB compresses to about 0.39 MB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    parts = [packer.compress(block) for _ in range(decoded // len(block))]
    return b"".join(parts) + packer.flush()


def gzip_bomb(decoded: int = 400 * 1024 * 1024) -> Scenario:
    body = bomb_bytes(decoded)
    return reply(200, body, Content_Encoding="gzip")


def gzipped(body: bytes, encoding: str = "gzip") -> Scenario:
    data = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    return reply(200, data, Content_Encoding=encoding)


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


def reset_mid_body(sent: int = 10, declared: int = 100, graceful: bool = False) -> Scenario:
    """The head and ``sent`` of ``declared`` body bytes, then a TCP reset (``graceful``:
    an orderly close, so the body is merely cut short)."""

    def scenario(exchange: Exchange) -> bool:
        exchange.send(head(200, {"Content-Length": str(declared)}) + b"[" * sent)
        time.sleep(0.05)
        if not graceful:
            _reset(exchange.sock)
        return False

    return scenario


def stall_mid_body(sent: int = 10, declared: int = 100, seconds: float = 30) -> Scenario:
    """The head and ``sent`` of ``declared`` body bytes, then nothing for ``seconds``."""

    def scenario(exchange: Exchange) -> bool:
        exchange.send(head(200, {"Content-Length": str(declared)}) + b"[" * sent)
        exchange.stop.wait(seconds)
        return False

    return scenario


def redirect(location: str, status: int = 307) -> Scenario:
    return reply(status, b"", Location=location)


def self_signed_cert(directory: pathlib.Path) -> pathlib.Path:
    """A certificate and key for 127.0.0.1 in one PEM file (openssl CLI), for TLS servers;
    the same file is the CA bundle a client verifies against."""
    pem = directory / "127.0.0.1.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(pem), "-out", str(pem)], check=True, capture_output=True)
    return pem


class HostileServer:
    def __init__(self, fallback: Optional[Scenario] = None,
                 certificate: Optional[pathlib.Path] = None) -> None:
        self.script: List[Scenario] = []
        self.fallback = fallback or reply()
        self.seen: List[Exchange] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._connections = 0
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._tls: Optional[ssl.SSLContext] = None
        if certificate is not None:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(str(certificate))
        self.origin = f"{'https' if certificate else 'http'}://127.0.0.1:{self.port}"
        self.api_url = f"{self.origin}/api"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                continue
            with self._lock:
                self._connections += 1
                number = self._connections
            threading.Thread(target=self._serve, args=(sock, number), daemon=True).start()

    def _serve(self, sock: socket.socket, number: int) -> None:
        if self._tls is not None:
            try:
                sock = self._tls.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError):
                sock.close()
                return
        reader = sock.makefile("rb")
        try:
            while not self._stop.is_set():
                line = reader.readline(65537)
                if not line.strip():
                    return
                words = line.decode("latin-1").split(" ")
                if len(words) != 3:  # not a request line: the client lost its place
                    return
                method, path = words[0], words[1]
                headers: Dict[str, str] = {}
                while True:
                    field = reader.readline(65537).decode("latin-1")
                    if field in ("\r\n", "\n", ""):
                        break
                    name, _, value = field.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = reader.read(int(headers.get("content-length") or 0))
                exchange = Exchange(sock, method, path, headers, body, number, self._stop)
                with self._lock:
                    self.seen.append(exchange)
                    scenario = self.script.pop(0) if self.script else self.fallback
                if not scenario(exchange):
                    return
        except OSError:
            pass
        finally:
            reader.close()
            with contextlib.suppress(OSError):
                sock.close()

    @property
    def connections(self) -> int:
        return self._connections

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()


class MeddlingProxy:
    """A TCP proxy on 127.0.0.1 in front of a real server that meddles with replies: each
    reply takes the next mode from ``script`` (default ``"pass"``):

    * ``"cut"``: the reply's head and half its body, then a TCP reset;
    * ``"drip"``: the reply one byte every 0.2 s;
    * ``"hints"``: a ``103 Early Hints`` reply first, then the real one.

    Replies are framed by their Content-Length (what Prefect's server sends for JSON).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.script: List[str] = []
        self.modes_used: List[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            client.close()
            return
        threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
        replies = upstream.makefile("rb")
        try:
            while not self._stop.is_set():
                start = b""
                while not start.endswith(b"\r\n\r\n"):
                    line = replies.readline(65537)
                    if not line:
                        return
                    start += line
                length = 0
                for field in start.decode("latin-1").split("\r\n"):
                    name, _, value = field.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = replies.read(length)
                with self._lock:
                    mode = self.script.pop(0) if self.script else "pass"
                    self.modes_used.append(mode)
                if not self._send(client, mode, start, body):
                    return
        except OSError:
            pass
        finally:
            replies.close()
            with contextlib.suppress(OSError):
                upstream.close()
            with contextlib.suppress(OSError):
                client.close()

    def _send(self, client: socket.socket, mode: str, start: bytes, body: bytes) -> bool:
        if mode == "hints":
            client.sendall(head(103, {"Link": "</hints.css>; rel=preload"}, "Early Hints"))
        if mode == "cut":
            client.sendall(start + body[: len(body) // 2])
            time.sleep(0.05)
            _reset(client)
            # Wake the thread reading from the client, so the close really happens now.
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RD)
            return False
        if mode == "drip":
            for byte in start + body:
                if self._stop.wait(0.2):
                    return False
                client.sendall(bytes([byte]))
            return True
        client.sendall(start + body)
        return True

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
