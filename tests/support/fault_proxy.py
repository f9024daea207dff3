"""A fault-injecting HTTP/1.1 proxy on 127.0.0.1, for the tests and the fault benchmark.

It sits in front of a real server and relays each request on its own upstream connection.
A script of rules picks requests by method and path and does something hostile to them:

* ``drop``: forward the request, wait for the server's reply, then reset the client's
  connection without a byte of it (the server committed; the client can't know); with
  ``then_down=True`` the proxy then refuses every new connection until ``up()``;
* ``502``: forward the request, wait for the reply, answer ``502 Bad Gateway`` instead;
* ``500``: the same, answering the ``500`` a Prefect server sends when its database fails
  in the middle of a request (``{"exception_message": "Internal Server Error"}``);
* ``refuse``: reset the connection without forwarding anything;
* ``interim``: forward, then send ``103 Early Hints`` before the real reply;
* ``drip``: forward, then send the reply one byte every ``drip_seconds``;
* ``reset_mid_body``: forward, then send the reply's head and half its body, then reset;
* ``oversized``: forward nothing; answer 200 with a chunked body of ``oversized_bytes``;
* ``retry_after``: forward nothing; answer 503 with ``Retry-After: <retry_after>``;
* ``delay``: forward, wait for the reply, hold it ``delay_seconds``, then send it.

``down()`` closes the listening socket (new connections are refused) and ``up()`` opens it
again on the same port. Every rule fires ``times`` times (on every ``every``-th matching
request), then falls away. ``accepted`` counts the client connections accepted so far and
``peak`` the most that were open at once (as the proxy saw them: a socket the client has just
closed counts until the proxy reads its end), ``busy_peak`` the most requests in flight at
once (exact).
"""

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator, List, Optional, Tuple

__all__ = ["FaultProxy", "Rule"]


@dataclass
class Rule:
    action: str
    method: str = "*"
    path: str = ""  # a substring of the request path
    times: int = 1
    retry_after: str = "1000000000"
    drip_seconds: float = 0.2
    delay_seconds: float = 3.0
    oversized_bytes: int = 64 * 1024 * 1024
    then_down: bool = False  # after a drop: refuse every later connection
    every: int = 1  # act on every n-th matching request only (the others pass)
    hits: int = field(default=0)
    seen: int = field(default=0)

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and self.path in path


class FaultProxy:
    """``FaultProxy(upstream_port)``; ``url`` is its base, ``api_url`` adds ``/api``."""

    def __init__(self, upstream_port: int, port: int = 0) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.rules: List[Rule] = []
        self.log: List[Tuple[str, str, str]] = []  # (method, path, action)
        self._lock = threading.Lock()
        self._closing = False
        self._listener: Optional[socket.socket] = None
        self._threads: List[threading.Thread] = []
        self._clients: List[socket.socket] = []
        self.accepted = 0
        self.peak = 0
        self._open = 0
        self.busy_peak = 0
        self._busy = 0
        self.port = port
        self.up()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = self.url + "/api"

    # ---- control -----------------------------------------------------------------------

    def add(self, action: str, method: str = "*", path: str = "", **kwargs: object) -> Rule:
        rule = Rule(action, method, path, **kwargs)  # type: ignore[arg-type]
        with self._lock:
            self.rules.append(rule)
        return rule

    def up(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def down(self) -> None:
        """Refuse new connections and reset the open ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            _reset(client)

    def stop(self) -> None:
        self._closing = True
        self.down()

    def actions(self) -> List[str]:
        with self._lock:
            return [action for _, _, action in self.log]

    # ---- relaying ----------------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._clients.append(client)
                self.accepted += 1
                self._open += 1
                self.peak = max(self.peak, self._open)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _pick(self, method: str, path: str) -> str:
        with self._lock:
            for rule in self.rules:
                if rule.hits < rule.times and rule.matches(method, path):
                    rule.seen += 1
                    if rule.seen % rule.every:
                        continue
                    rule.hits += 1
                    self.log.append((method, path, rule.action))
                    return rule.action
            self.log.append((method, path, "pass"))
            return "pass"

    def _rule_for(self, action: str) -> Rule:
        with self._lock:
            for rule in reversed(self.rules):
                if rule.action == action:
                    return rule
        return Rule(action)

    @contextlib.contextmanager
    def _in_flight(self) -> Iterator[None]:
        """One request, from the moment it was read until its reply was written: a client
        can only send another one on a connection it holds, so this peak is exact, where
        ``peak`` may briefly count a socket the client already closed."""
        with self._lock:
            self._busy += 1
            self.busy_peak = max(self.busy_peak, self._busy)
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1

    def _serve(self, client: socket.socket) -> None:
        upstream: Optional[socket.socket] = None
        reader = client.makefile("rb")
        try:
            while True:
                request = _read_message(reader, is_request=True)
                if request is None:
                    return
                with self._in_flight():
                    head, body = request
                    method, path = head.split(b" ", 2)[:2]
                    action = self._pick(method.decode(), path.decode())
                    if action == "refuse":
                        _reset(client)
                        return
                    if action == "oversized":
                        self._send_oversized(client)
                        continue
                    if action == "retry_after":
                        rule = self._rule_for(action)
                        client.sendall(
                            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                            b"Retry-After: " + rule.retry_after.encode() + b"\r\n\r\n"
                        )
                        continue
                    reply = None
                    for _ in range(2):
                        reused = upstream is not None
                        if upstream is None:
                            upstream = socket.create_connection(self.upstream, timeout=60)
                            upstream_reader = upstream.makefile("rb")
                        try:
                            upstream.sendall(head + body)
                            reply = _read_message(upstream_reader, is_request=False)
                        except OSError:
                            reply = None
                        if reply is not None or not reused:
                            break
                        # The server closed the kept-alive upstream connection as the request
                        # went out (its idle timeout), unread: send it again on a new one, as a
                        # real proxy does, instead of failing the client.
                        upstream.close()
                        upstream = None
                    if reply is None:
                        _reset(client)
                        return
                    reply_head, reply_body = reply
                    if action == "drop":
                        if self._rule_for(action).then_down:
                            self.down()
                        _reset(client)
                        return
                    if action == "502":
                        client.sendall(
                            b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n"
                            b"Content-Length: 11\r\n\r\nBad Gateway"
                        )
                        continue
                    if action == "500":
                        body = b'{"exception_message":"Internal Server Error"}'
                        client.sendall(
                            b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                        )
                        continue
                    if action == "504":
                        client.sendall(
                            b"HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain\r\n"
                            b"Content-Length: 15\r\n\r\nGateway Timeout"
                        )
                        continue
                    if action == "interim":
                        client.sendall(
                            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                        )
                    if action == "reset_mid_body":
                        client.sendall(reply_head + reply_body[: max(1, len(reply_body) // 2)])
                        time.sleep(0.05)
                        _reset(client)
                        return
                    if action == "delay":
                        time.sleep(self._rule_for(action).delay_seconds)
                    if action == "drip":
                        delay = self._rule_for(action).drip_seconds
                        for byte in reply_head + reply_body:
                            client.sendall(bytes([byte]))
                            time.sleep(delay)
                        continue
                    client.sendall(reply_head + reply_body)
        except OSError:
            _reset(client)
        finally:
            reader.close()
            client.close()
            if upstream is not None:
                upstream.close()
            with self._lock:
                self._open -= 1

    def _send_oversized(self, client: socket.socket) -> None:
        total = self._rule_for("oversized").oversized_bytes
        client.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"[" + b" " * (1024 * 1024 - 1)
        sent = 0
        while sent < total:
            piece = chunk if sent == 0 else b" " * len(chunk)
            client.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sent += len(piece)
        client.sendall(b"1\r\n]\r\n0\r\n\r\n")


def _read_message(reader: BinaryIO, *, is_request: bool) -> Optional[Tuple[bytes, bytes]]:
    """One HTTP/1.1 message: its head (through the blank line) and its raw body bytes."""
    head = b""
    while True:
        line = reader.readline(65537)
        if not line:
            return None
        head += line
        if line in (b"\r\n", b"\n"):
            break
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        if b":" in line:
            name, value = line.split(b":", 1)
            headers[name.strip().lower()] = value.strip()
    status_204 = not is_request and lines[0].split(b" ")[1:2] in ([b"204"], [b"304"])
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = b""
        while True:
            size_line = reader.readline()
            body += size_line
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            body += reader.read(size + 2)
            if size == 0:
                return head, body
    length = int(headers.get(b"content-length", b"0"))
    if status_204:
        length = 0
    return head, reader.read(length) if length else b""


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN, as a crashed peer or a killed proxy would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
