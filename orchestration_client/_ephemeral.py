"""Local Prefect servers for clients that have no API URL: imported only when needed.

* ``shared_subprocess_server()``: what ``get_client()`` uses when ``PREFECT_API_URL`` is
  unset. It starts ``prefect``'s API (from the optional ``server`` extra) as a uvicorn
  subprocess on 127.0.0.1 and a free port, waits for ``/api/health``, and shares it between
  the clients of this process; it stops when the last of them closes, or at exit. Its data
  lives in ``PREFECT_HOME`` (default ``~/.prefect``), as with Prefect's own ephemeral mode.
  The server dies with this process however it ends, even by SIGKILL (``_server_guard``).
* ``serve_app(app)``: serves an ASGI application (such as Prefect's ``create_app()``) with
  uvicorn on a background thread, so the synchronous client can talk to it over HTTP.

No ``async def`` here: uvicorn runs its own event loop inside its thread or process.
"""

import atexit
import importlib.util
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any, List, Optional

from . import _server_guard

__all__ = ["NO_URL_MESSAGE", "LocalServer", "serve_app", "shared_subprocess_server"]

logger = logging.getLogger("orchestration_client")

NO_URL_MESSAGE = (
    "No Prefect API URL is configured. Set PREFECT_API_URL to the address of a Prefect "
    "server (for example http://127.0.0.1:4200/api), or install the embedded server with "
    "pip install 'orchestration_client[server]'."
)
_DEFAULT_STARTUP_TIMEOUT = 60.0  # a fresh database spends most of this on migrations
_PORT_ATTEMPTS = 3


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(api_url + "/health", timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


class LocalServer:
    """A Prefect API on 127.0.0.1 that this process started; ``stop()`` ends it."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class _SubprocessServer(LocalServer):
    def __init__(self, timeout: float) -> None:
        started = time.monotonic()
        last_error = ""
        for _ in range(_PORT_ATTEMPTS):
            port = _free_port()
            super().__init__(f"http://127.0.0.1:{port}/api")
            # The server's stdin is a pipe only this process writes to: when this process
            # dies, however it dies, the pipe closes and the server ends (see _server_guard).
            self._process = subprocess.Popen(
                self._command(port),
                env=self._environment(),
                stdin=subprocess.PIPE,
                start_new_session=True,
            )
            deadline = started + timeout
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    last_error = f"the server process exited with code {self._process.returncode}"
                    break
                if _healthy(self.api_url):
                    logger.info(
                        "started a local Prefect server at %s in %.1f s",
                        self.api_url,
                        time.monotonic() - started,
                    )
                    return
                time.sleep(0.1)
            else:
                self._terminate()
                raise RuntimeError(
                    f"Timed out after {timeout:.0f} s waiting for the local Prefect server at "
                    f"{self.api_url} to become healthy "
                    "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS sets the limit)"
                )
        raise RuntimeError(f"Could not start a local Prefect server: {last_error}")

    @staticmethod
    def _command(port: int) -> List[str]:
        from_main_thread = threading.current_thread() is threading.main_thread()
        return [
            sys.executable, _server_guard.__file__, str(os.getpid()), str(int(from_main_thread)),
            "--factory", "prefect.server.api.server:create_app",
            "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "error", "--lifespan", "on",
        ]  # fmt: skip

    @staticmethod
    def _environment() -> "dict[str, str]":
        return {
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }

    def _terminate(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def stop(self) -> None:
        self._terminate()
        logger.info("stopped the local Prefect server at %s", self.api_url)


class _SharedServer(LocalServer):
    """A reference to the process-wide subprocess server; the last ``stop()`` ends it."""

    _lock = threading.Lock()
    _server: Optional[_SubprocessServer] = None
    _users = 0

    def __init__(self, timeout: float) -> None:
        cls = type(self)
        with cls._lock:
            if cls._server is None:
                cls._server = _SubprocessServer(timeout)
                atexit.register(cls._stop_now)
            cls._users += 1
            super().__init__(cls._server.api_url)
        self._stopped = False

    def stop(self) -> None:
        cls = type(self)
        with cls._lock:
            if self._stopped:
                return
            self._stopped = True
            cls._users -= 1
            if cls._users > 0:
                return
        cls._stop_now()

    @classmethod
    def _stop_now(cls) -> None:
        with cls._lock:
            server, cls._server, cls._users = cls._server, None, 0
        if server is not None:
            server.stop()


def shared_subprocess_server(startup_timeout: Optional[float] = None) -> LocalServer:
    """Start (or join) this process's local Prefect server; needs the ``server`` extra."""
    if importlib.util.find_spec("prefect") is None or importlib.util.find_spec("uvicorn") is None:
        raise ValueError(NO_URL_MESSAGE)
    return _SharedServer(startup_timeout or _DEFAULT_STARTUP_TIMEOUT)


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


def serve_app(app: Any, startup_timeout: float = _DEFAULT_STARTUP_TIMEOUT) -> LocalServer:
    """Serve an ASGI ``app`` on 127.0.0.1 from a background thread until ``stop()``."""
    if not callable(app):
        raise TypeError(
            f"api must be a URL string or an ASGI application, got {type(app).__name__}"
        )
    return _ThreadServer(app, startup_timeout)
