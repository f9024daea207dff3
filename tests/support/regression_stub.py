"""Tiny raw-socket HTTP stub on 127.0.0.1 for the hostile scenarios."""
import json
import socket
import threading


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None, None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0") or 0)
    while len(rest) < n:
        rest += conn.recv(65536)
    return method, path, headers, rest

def reply(status, body=b"", headers=(), reason="OK"):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    h = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Content-Type: application/json"]
    h += list(headers)
    return ("\r\n".join(h) + "\r\n\r\n").encode() + body

class Stub:
    """handler(conn, method, path, headers, body, state) -> bool keep_alive"""
    def __init__(self, handler):
        self.handler = handler
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.state = {"requests": []}
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            while True:
                r = read_request(conn)
                if r[0] is None:
                    break
                method, path, headers, body = r
                with self.lock:
                    self.state["requests"].append((method, path, headers, body))
                if not self.handler(conn, method, path, headers, body, self.state):
                    break
        except OSError:
            pass
        finally:
            try: conn.close()
            except OSError: pass

    def stop(self):
        self.stopped = True
        self.sock.close()
