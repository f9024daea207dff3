"""A scripted HTTP server on 127.0.0.1 (stdlib only) for fault tests.

Each request takes the next scripted reply: a status with headers and body, ``HANG`` (read
the request and never answer), or ``RESET`` (close the connection without a reply). When
the script runs out, the fallback reply is used. Every request is recorded with its time.
"""

import http.server
import socket
import threading
import time
from typing import Dict, List, Tuple, Union

HANG = "hang"
RESET = "reset"
Reply = Union[str, Tuple[int, Dict[str, str], bytes]]


class StubServer:
    def __init__(self, fallback: Reply = (200, {}, b"true")) -> None:
        self.script: List[Reply] = []
        self.fallback = fallback
        self.seen: List[Tuple[float, str, str]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except (ConnectionError, OSError):
                    self.close_connection = True

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                reply = stub.next_reply(self.command, self.path)
                if reply == HANG:
                    stub._stop.wait(60)
                    self.close_connection = True
                    return
                if reply == RESET:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.close_connection = True
                    return
                status, headers, body = reply  # type: ignore[misc]
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = _any

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.api_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def next_reply(self, method: str, path: str) -> Reply:
        with self._lock:
            self.seen.append((time.monotonic(), method, path))
            return self.script.pop(0) if self.script else self.fallback

    def gaps(self) -> List[float]:
        """Seconds between consecutive requests."""
        times = [t for t, _, _ in self.seen]
        return [b - a for a, b in zip(times, times[1:])]

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def json_reply(status: int, body: bytes = b"{}", **headers: str) -> Reply:
    return (status, {k.replace("_", "-"): v for k, v in headers.items()}, body)
