"""One local Prefect server per process (``ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT=0``,
and where the shared server is not supported): what ``get_client()`` did before the shared
server. It starts ``prefect``'s API (from the optional ``server`` extra) as a uvicorn
subprocess on 127.0.0.1 and a free port, waits for ``/api/health``, and shares it between
the clients of this process; it stops when the last of them closes, or at exit. Its data
lives in ``PREFECT_HOME`` (default ``~/.prefect``), as with Prefect's own ephemeral mode.
The server dies with this process however it ends, even by SIGKILL (``_guard``).
"""

import atexit
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from typing import List, Optional

from ._common import LocalServer, logger
from ._options import server_environment

__all__ = ["per_process_server"]

_PORT_ATTEMPTS = 3
_GUARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_guard.py")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _is_open(descriptor: int) -> bool:
    try:
        os.fstat(descriptor)
    except OSError:
        return False
    return True


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(api_url + "/health", timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


class _SubprocessServer(LocalServer):
    def __init__(self, timeout: float) -> None:
        started = time.monotonic()
        last_error = ""
        for _ in range(_PORT_ATTEMPTS):
            port = _free_port()
            super().__init__(f"http://127.0.0.1:{port}/api")
            # The server's stdin is a pipe only this process writes to: when this process
            # dies, however it dies, the pipe closes and the server ends (see _guard).
            self._process = subprocess.Popen(
                self._command(port),
                env=self._environment(),
                stdin=subprocess.PIPE,
                # A standard descriptor this process closed is /dev/null for the server.
                stdout=None if _is_open(1) else subprocess.DEVNULL,
                stderr=None if _is_open(2) else subprocess.DEVNULL,
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
            sys.executable, _GUARD, str(os.getpid()), str(int(from_main_thread)),
            "--factory", "prefect.server.api.server:create_app",
            "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "error", "--lifespan", "on",
        ]  # fmt: skip

    @staticmethod
    def _environment() -> "dict[str, str]":
        return server_environment(
            {
                "PREFECT_UI_ENABLED": "0",
                "PREFECT_SERVER_UI_ENABLED": "false",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT__SERVER_EPHEMERAL": "1",
                "PREFECT__SERVER_FINAL": "1",
            }
        )

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

    def ended(self) -> Optional[str]:
        """None while the server runs; else how it ended."""
        code = self._process.poll()
        if code is None:
            return None
        return f"it ended with exit code {code}" if code >= 0 else f"it was ended by signal {-code}"


class _SharedServer(LocalServer):
    """A reference to the process-wide subprocess server; the last ``stop()`` ends it."""

    _lock = threading.Lock()
    _server: Optional[_SubprocessServer] = None
    _users = 0

    def __init__(self, timeout: float) -> None:
        cls = type(self)
        with cls._lock:
            if cls._server is not None and cls._server.ended() is not None:
                # Killed from outside: its clients fail at once; new ones get a new server.
                cls._server, cls._users = None, 0
            if cls._server is None:
                cls._server = _SubprocessServer(timeout)
                atexit.register(cls._stop_now)
            cls._users += 1
            server: _SubprocessServer = cls._server
            self._mine = server
            super().__init__(server.api_url)
        self._stopped = False

    def check_connection(self, sock: Optional[socket.socket]) -> Optional[str]:
        ended = self._mine.ended() if sock is None else None
        if ended is None:
            return None
        return (
            f"the local Prefect server of this process ({self.api_url}, pid "
            f"{self._mine._process.pid}) is no longer running ({ended}); nothing was sent. "
            "Call get_client() again for a client of a new one."
        )

    def stop(self) -> None:
        cls = type(self)
        with cls._lock:
            if self._stopped:
                return
            self._stopped = True
            if self._mine is not cls._server:  # it ended and was replaced
                ended: Optional[_SubprocessServer] = self._mine
            else:
                ended = None
                cls._users -= 1
                if cls._users > 0:
                    return
        if ended is not None:
            ended.stop()
            return
        cls._stop_now()

    @classmethod
    def _stop_now(cls) -> None:
        with cls._lock:
            server, cls._server, cls._users = cls._server, None, 0
        if server is not None:
            server.stop()


def per_process_server(startup_timeout: float) -> LocalServer:
    """Start (or join) this process's own local Prefect server."""
    return _SharedServer(startup_timeout)
