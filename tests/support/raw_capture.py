"""A raw-socket HTTP server on 127.0.0.1 that records the exact bytes of request heads."""

import socket
import threading
import uuid
from typing import List, Tuple

ATTRIBUTION_ENV = {
    "PREFECT__FLOW_NAME": "データ処理",
    "PREFECT__FLOW_ID": str(uuid.UUID(int=5)),
    "PREFECT__WORKER_NAME": "wörker",  # Latin-1, but Prefect sends UTF-8 here too
    "PREFECT__DEPLOYMENT_NAME": "déploiement 🚀",
}
ATTRIBUTION_HEADERS = (b"x-prefect-flow-name", b"x-prefect-flow-id", b"x-prefect-worker-name",
                       b"x-prefect-deployment-name")  # fmt: skip


class RawCapture:
    """Records the raw bytes of every request head; answers each with ``"3.9.1"``."""

    def __init__(self) -> None:
        self.heads: List[bytes] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.api_url = f"http://127.0.0.1:{self.server.getsockname()[1]}/api"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.heads.append(data.split(b"\r\n\r\n")[0])
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 7\r\nConnection: close\r\n\r\n"3.9.1"'
                )

    def header_lines(self, names: Tuple[bytes, ...]) -> List[bytes]:
        return [line for head in self.heads for line in head.split(b"\r\n")
                if line.split(b":", 1)[0].lower() in names]  # fmt: skip

    def stop(self) -> None:
        self.server.close()
