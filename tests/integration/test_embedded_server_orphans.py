"""With ``ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT=0``, the embedded server (``get_client()``
with no ``PREFECT_API_URL``) belongs to one process and dies with it, whatever kills that
process: a real parent starts it and is then killed. (The default, shared server outlives
its starter on purpose: tests/integration/test_local_server.py.)"""

import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Callable, Iterator, List, Optional, Tuple

import pytest
import requests

pytestmark = pytest.mark.integration

PARENT = """
import sys, threading, time
from orchestration_client import get_client
from orchestration_client._local_server._per_process import _SharedServer

clients = []
def start():
    clients.append(get_client())
if sys.argv[1] == "thread":  # started from a thread that then ends
    worker = threading.Thread(target=start)
    worker.start()
    worker.join()
else:
    start()
server = _SharedServer._server
print(clients[0].api_url, server._process.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper."""
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def answers(api_url: str) -> bool:
    try:
        return requests.get(api_url + "health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def group_members(pgid: int) -> List[int]:
    """Live processes in process group ``pgid`` (the server and anything it started)."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return found


ParentFactory = Callable[[str], Tuple["subprocess.Popen[str]", str, int]]


@pytest.fixture
def parent(tmp_path: pathlib.Path, template_db: pathlib.Path) -> Iterator[ParentFactory]:
    started: List[Tuple[subprocess.Popen[str], Optional[int]]] = []

    def start(mode: str) -> Tuple[subprocess.Popen[str], str, int]:
        home = tmp_path / f"home-{len(started)}"
        home.mkdir()
        (home / "prefect.db").write_bytes(template_db.read_bytes())
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        process = subprocess.Popen([sys.executable, "-c", PARENT, mode], text=True,
                                   env={**env, "PREFECT_HOME": str(home),
                                        "ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT": "0"},
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        started.append((process, None))
        line = process.stdout.readline() if process.stdout else ""
        assert line, "the parent did not start its embedded server"
        api_url, pid = line.split()
        started[-1] = (process, int(pid))
        return process, api_url, int(pid)

    yield start
    for process, server_pid in started:  # whatever is left is killed
        if process.poll() is None:
            process.kill()
            process.wait()
        if server_pid is not None and group_members(server_pid):
            os.killpg(server_pid, signal.SIGKILL)
        if server_pid is not None and alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)


def ends_within(seconds: float, api_url: str, pid: int) -> float:
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        if not answers(api_url) and not alive(pid) and not group_members(pid):
            return time.monotonic() - began
        time.sleep(0.1)
    raise AssertionError(f"the embedded server {pid} outlived its parent by {seconds} s")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_server_dies_with_a_killed_parent(parent: ParentFactory, how: signal.Signals) -> None:
    process, api_url, pid = parent("main")
    assert answers(api_url) and alive(pid)
    process.send_signal(how)
    process.wait(timeout=10)
    assert ends_within(15, api_url, pid) < 15


def test_server_started_from_a_finished_thread_lives_on_then_dies_with_the_parent(
    parent: ParentFactory,
) -> None:
    """The kernel's parent-death signal follows the thread that forked; the server must not
    die when that thread ends, only when the process does."""
    process, api_url, pid = parent("thread")
    time.sleep(2)
    assert answers(api_url) and alive(pid)
    process.kill()
    process.wait(timeout=10)
    assert ends_within(15, api_url, pid) < 15
