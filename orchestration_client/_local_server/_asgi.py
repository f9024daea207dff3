"""``serve_app(app)``: serves an ASGI application (such as Prefect's ``create_app()``) with
uvicorn on a background thread, so the synchronous client can talk to it over HTTP. Used by
``SyncPrefectClient(app)``; no ``async def`` here, uvicorn runs its own event loop in its
thread."""

import socket
import threading
import time
from typing import Any

from ._common import DEFAULT_STARTUP_TIMEOUT, LocalServer, logger

__all__ = ["serve_app"]


class _ThreadServer(LocalServer):
    def __init__(self, app: Any, timeout: float) -> None:
        try:
            import uvicorn
        except ImportError:
            raise RuntimeError(
                "Serving an ASGI app needs uvicorn: pip install 'orchestration_client[server]'"
            ) from None
        started = time.monotonic()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        port = self._socket.getsockname()[1]
        super().__init__(f"http://127.0.0.1:{port}/api")
        config = uvicorn.Config(app, log_level="error", lifespan="on")
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._uvicorn.run,
            kwargs={"sockets": [self._socket]},
            name=f"orchestration_client-asgi-{port}",
            daemon=True,
        )
        self._thread.start()
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() - started > timeout:
                self.stop()
                raise RuntimeError(f"The ASGI app did not start serving within {timeout:.0f} s")
            time.sleep(0.02)
        logger.info(
            "serving the ASGI app at %s (started in %.1f s)",
            self.api_url,
            time.monotonic() - started,
        )

    def stop(self) -> None:
        self._uvicorn.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


def serve_app(app: Any, startup_timeout: float = DEFAULT_STARTUP_TIMEOUT) -> LocalServer:
    """Serve an ASGI ``app`` on 127.0.0.1 from a background thread until ``stop()``."""
    if not callable(app):
        raise TypeError(
            f"api must be a URL string or an ASGI application, got {type(app).__name__}"
        )
    return _ThreadServer(app, startup_timeout)
