"""gunicorn ``--preload`` with 2 workers of one class (sync, gthread or gevent) serving
``wsgi_app``, whose client was made and used in the master before the fork: 24 lifecycle
requests and 120 read requests, 16 at a time, each reply saying whether every call it made
was answered right. Usage: ``gunicorn_world.py sync|gthread|gevent``; env PREFECT_API_URL,
WORLD_TAG."""

import concurrent.futures
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Dict, List

import requests
from world import Tally

KIND = sys.argv[1]
OPTIONS = {"sync": [], "gthread": ["--threads", "4"], "gevent": ["--worker-connections", "100"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


port = free_port()
server = subprocess.Popen(
    [sys.executable, "-m", "gunicorn", "--preload", "--workers", "2", "--worker-class", KIND,
     *OPTIONS[KIND], "--bind", f"127.0.0.1:{port}", "--timeout", "60",
     "--graceful-timeout", "5", "--log-level", "warning", "wsgi_app:app"],
)  # fmt: skip
base = f"http://127.0.0.1:{port}"
tally = Tally()
tally.runs = tally.right = 1  # the lifecycle at import, checked there (the app exits if wrong)
try:
    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}")
        try:
            if requests.get(f"{base}/read", timeout=5).status_code == 200:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("gunicorn did not answer within 60 s")
        time.sleep(0.2)

    def call(path: str) -> Dict[str, Any]:
        try:
            reply = requests.get(base + path, timeout=90)
            reply.raise_for_status()
            body: Dict[str, Any] = reply.json()
            return body
        except Exception as exc:
            return {"pid": 0, "problems": [f"{path}: {type(exc).__name__}: {exc}"],
                    "warnings": [], "right": 0}  # fmt: skip

    paths = [f"/lifecycle?label={KIND}-{index}" for index in range(24)]
    paths += ["/read"] * 120
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        # lifecycles first (the reads pick among the runs they made), overlapping the reads
        replies: List[Dict[str, Any]] = list(pool.map(call, paths))
    pids = set()
    for path, reply in zip(paths, replies):
        lifecycle = path.startswith("/lifecycle")
        tally.runs += lifecycle
        tally.reads += not lifecycle
        if reply["problems"] or reply["right"] != 1:
            tally.problems += reply["problems"] or [f"{path}: not right"]
        else:
            tally.right += lifecycle
            tally.reads_right += not lifecycle
        tally.problems += reply["warnings"]
        pids.add(reply["pid"])
    tally.info["workers"] = len(pids - {0})
finally:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(10)
tally.expect(server.returncode == 0, f"gunicorn exited with {server.returncode}")
tally.problems = sorted(set(tally.problems))
tally.report()
