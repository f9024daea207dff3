"""A real forward HTTP proxy on 127.0.0.1 that records every request it relays (method,
absolute URL, headers), for the proxy-variable tests. Stdlib only; plain ``http://`` only
(no ``CONNECT``), which is what an ``http://`` API URL sends through ``HTTP_PROXY``."""

import http.client
import http.server
import threading
import urllib.parse
from typing import Dict, List, NamedTuple


class Relayed(NamedTuple):
    method: str
    url: str
    headers: Dict[str, str]  # names in lower case


class RecordingProxy:
    """``RecordingProxy()``; ``url`` is what HTTP_PROXY should say; ``stop()`` ends it."""

    def __init__(self) -> None:
        self.seen: List[Relayed] = []
        lock = threading.Lock()
        seen = self.seen

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def relay(self) -> None:
                headers = {name.lower(): value for name, value in self.headers.items()}
                with lock:
                    seen.append(Relayed(self.command, self.path, headers))
                target = urllib.parse.urlsplit(self.path)
                if target.scheme != "http" or not target.hostname:
                    self.send_error(400, "absolute http:// URL expected")
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream = http.client.HTTPConnection(
                    target.hostname, target.port or 80, timeout=60
                )
                try:
                    path = target.path + (f"?{target.query}" if target.query else "")
                    forwarded = {k: v for k, v in self.headers.items()
                                 if k.lower() not in ("proxy-connection", "connection")}  # fmt: skip
                    upstream.request(self.command, path, body=body or None, headers=forwarded)
                    reply = upstream.getresponse()
                    content = reply.read()
                finally:
                    upstream.close()
                self.send_response(reply.status, reply.reason)
                for name, value in reply.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = relay

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
