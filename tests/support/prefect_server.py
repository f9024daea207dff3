"""Start and stop real Prefect servers on 127.0.0.1 for the tests.

The database migration runs once per test session into a template home; each server gets a
copy of that database, so it starts in a few seconds instead of ~15.
"""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, Optional

import requests

STARTUP_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prefect_executable() -> str:
    beside = pathlib.Path(sys.executable).with_name("prefect")
    return str(beside) if beside.exists() else (shutil.which("prefect") or "prefect")


def server_environment(
    home: pathlib.Path, extra: Optional[Dict[str, str]] = None
) -> Dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PREFECT_") or key == "PREFECT_HOME"
    }
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    env.update(extra or {})
    return env


def migrate_template(home: pathlib.Path) -> pathlib.Path:
    """Create a migrated SQLite database in ``home`` and return its path."""
    home.mkdir(parents=True, exist_ok=True)
    database = home / "prefect.db"
    if not database.exists():
        subprocess.run(
            [prefect_executable(), "server", "database", "upgrade", "-y"],
            env=server_environment(home),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=300,
        )
    return database


class PrefectServer:
    """One ``prefect server start --no-services`` process; ``stop()`` ends it."""

    def __init__(
        self,
        home: pathlib.Path,
        template_db: Optional[pathlib.Path] = None,
        *,
        port: Optional[int] = None,
        env: Optional[Dict[str, str]] = None,
        executable: Optional[str] = None,
        no_services_flag: bool = True,
    ) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.executable = executable or prefect_executable()
        self.no_services_flag = no_services_flag  # servers before 3.1 lack --no-services
        if template_db is not None and not (home / "prefect.db").exists():
            shutil.copy(template_db, home / "prefect.db")
        self.home = home
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api"
        self.extra_env = env or {}
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.log_path = home / "server.log"

    def start(self, timeout: float = STARTUP_TIMEOUT) -> "PrefectServer":
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [self.executable, "server", "start", "--host", "127.0.0.1",
             "--port", str(self.port), *(["--no-services"] if self.no_services_flag else [])],
            env=server_environment(self.home, self.extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Prefect server exited early:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.api_url}/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Prefect server not healthy after {timeout} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
