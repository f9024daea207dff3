"""Prefect's production topology on 127.0.0.1: a throwaway PostgreSQL cluster, API replicas
using it, and nginx round-robin in front of them. Real components only.

Used by the scale tests' fixture and by benchmarks/scale.py; both stop what they start.
"""

import glob
import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile
import time
from typing import List, Optional

from support.prefect_server import PrefectServer, free_port, prefect_executable, server_environment


def _pg_bin(name: str) -> Optional[str]:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def missing_components() -> List[str]:
    """What this machine lacks to build the topology (empty when all is there)."""
    missing = [name for name in ("initdb", "pg_ctl", "postgres") if not _pg_bin(name)]
    if not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"):
        missing.append("nginx")
    return missing


class Postgres:
    """A throwaway cluster in its own temp dir, run by an unprivileged user when we are
    root (PostgreSQL refuses to run as root); the dir goes when the cluster stops."""

    def __init__(self) -> None:
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
        self.data = self.root / "pgdata"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self.url = f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/prefect"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if os.geteuid() == 0 else []
        result = subprocess.run([*prefix, *command], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")

    def start(self) -> "Postgres":
        os.chmod(self.root, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.root, self.user)
        self._run(_pg_bin("initdb") or "initdb", "-D", str(self.data), "--auth=trust",
                  "-U", self.user, "--encoding=UTF8", "--no-sync")
        self.resume()
        self._run(_pg_bin("createdb") or "createdb", "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", self.user, "prefect")
        return self

    def resume(self) -> None:
        """Start the cluster's server (again), on the same port and data; returns when it
        accepts connections."""
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c max_connections=300 -c fsync=off")
        self._run(_pg_bin("pg_ctl") or "pg_ctl", "-D", str(self.data), "-o", options,
                  "-l", str(self.root / "postgres.log"), "-w", "start")

    def crash(self) -> None:
        """Stop the server at once, as a crash or a failover would (``pg_ctl -m immediate``:
        every connection is cut, no checkpoint, crash recovery on the next start)."""
        self._run(_pg_bin("pg_ctl") or "pg_ctl", "-D", str(self.data), "-m", "immediate",
                  "-w", "stop")

    def blink(self, down_seconds: float) -> None:
        """``crash()``, stay down ``down_seconds``, then ``resume()``."""
        self.crash()
        time.sleep(down_seconds)
        self.resume()

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(_pg_bin("pg_ctl") or "pg_ctl", "-D", str(self.data), "-m", "fast",
                      "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


class Nginx:
    """nginx round-robin over the replicas, with passive health checks."""

    def __init__(self, root: pathlib.Path, upstreams: List[int]) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api"
        self.upstreams = upstreams
        self.process: Optional[subprocess.Popen[bytes]] = None

    def config(self) -> str:
        servers = "\n".join(
            f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;"
            for port in self.upstreams
        )
        temp = self.root / "temp"
        return f"""
worker_processes 1;
daemon off;
pid {self.root}/nginx.pid;
error_log {self.root}/error.log warn;
events {{ worker_connections 2048; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    upstream prefect {{
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://prefect;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
            proxy_next_upstream error timeout http_502;
            client_max_body_size 16m;
        }}
    }}
}}
"""

    def start(self) -> "Nginx":
        temp = self.root / "temp"
        temp.mkdir(parents=True, exist_ok=True)
        os.chmod(temp, 0o777)  # nginx workers run as an unprivileged user when we are root
        (self.root / "nginx.conf").write_text(self.config())
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.process = subprocess.Popen(
            [binary, "-p", str(self.root), "-c", str(self.root / "nginx.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        import requests

        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.api_url}/health", timeout=1)
                return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("nginx did not start: " + (self.root / "error.log").read_text())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class Topology:
    """PostgreSQL, ``replicas`` Prefect API servers on it, and nginx in front."""

    def __init__(self, root: pathlib.Path, replicas: int = 2) -> None:
        self.root = root
        self.postgres = Postgres()
        self.replicas: List[PrefectServer] = []
        self.count = replicas
        self.nginx: Optional[Nginx] = None

    @property
    def api_url(self) -> str:
        assert self.nginx is not None
        return self.nginx.api_url

    def start(self) -> "Topology":
        self.postgres.start()
        env = {"PREFECT_API_DATABASE_CONNECTION_URL": self.postgres.url,
               "PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false",
               "PREFECT_API_DATABASE_MIGRATE_ON_START": "false"}
        home = self.root / "home-0"
        home.mkdir(parents=True, exist_ok=True)
        # The migration runs once, before any replica starts.
        subprocess.run([prefect_executable(), "server", "database", "upgrade", "-y"],
                       env=server_environment(home, env), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
        for index in range(self.count):
            self.replicas.append(PrefectServer(self.root / f"home-{index}", env=env).start())
        self.nginx = Nginx(self.root / "nginx", [r.port for r in self.replicas]).start()
        return self

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        for replica in self.replicas:
            replica.stop()
        self.postgres.stop()
