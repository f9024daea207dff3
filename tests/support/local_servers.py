"""Shared local servers (``get_client()`` with no URL) in the test session.

* ``isolate_prefect_home()`` runs when conftest is imported, before any test: it points
  ``PREFECT_HOME`` at a fresh temporary directory, so nothing in the session can find, use
  or start a developer's shared server in ``~/.prefect``. (``HOME`` is left alone: pip's
  configuration and the compat venv cache live there.)
* ``local_home``: a test's homes (with the session's migrated database); every server
  started in them is stopped when the test ends.
* ``no_local_server_left``: at the end of the session, any shared server still running in
  the session's temporary directories, started by a process of this session (it carries
  ``OC_TEST_SESSION`` in its environment, which tests do not strip), or started in the real
  ``~/.prefect`` during the session, is stopped and the session fails, naming it.
"""

import atexit
import os
import pathlib
import shutil
import tempfile
import time
import uuid
from typing import Callable, Iterator, List, Set, Tuple

import pytest

REAL_PREFECT_HOME = pathlib.Path(os.path.expanduser("~/.prefect"))
SESSION_STARTED = time.time()
SESSION_MARK = f"OC_TEST_SESSION={uuid.uuid4().hex}"
_session_home: List[pathlib.Path] = []


def isolate_prefect_home() -> pathlib.Path:
    """Point ``PREFECT_HOME`` at a temporary directory for the rest of the session."""
    if not _session_home:
        _session_home.append(pathlib.Path(tempfile.mkdtemp(prefix="oc-tests-prefect-home-")))
        # Also when no session fixture runs (--collect-only); servers are stopped before.
        atexit.register(shutil.rmtree, _session_home[0], ignore_errors=True)
    os.environ["PREFECT_HOME"] = str(_session_home[0])
    os.environ["OC_TEST_SESSION"] = SESSION_MARK.split("=", 1)[1]
    os.environ.pop("ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT", None)  # tests set their own
    return _session_home[0]


def server_processes() -> List[Tuple[int, str]]:
    """(pid, record directory) of every live shared local server guard of this user (from
    /proc: elsewhere the sweep finds nothing)."""
    found: List[Tuple[int, str]] = []
    if not pathlib.Path("/proc/self").is_dir():
        return found
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = [os.fsdecode(arg) for arg in (entry / "cmdline").read_bytes().split(b"\0")]
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state in ("Z", "X") or "--shared" not in argv or "--directory" not in argv:
            continue
        if any(arg.endswith("_guard.py") for arg in argv) and entry.stat().st_uid == os.geteuid():
            found.append((int(entry.name), argv[argv.index("--directory") + 1]))
    return found


def started_by_this_session() -> List[Tuple[int, str]]:
    """Shared servers whose environment carries this session's mark."""
    found = []
    for pid, directory in server_processes():
        try:
            environ = pathlib.Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if SESSION_MARK.encode() in environ:
            found.append((pid, directory))
    return found


def servers_under(root: pathlib.Path) -> List[Tuple[int, str]]:
    prefix = str(root.resolve()) + os.sep
    return [(pid, d) for pid, d in server_processes() if (d + os.sep).startswith(prefix)]


def stop_servers_under(root: pathlib.Path) -> List[Tuple[int, str]]:
    """Stop every shared server whose home is under ``root``; returns those it found."""
    from orchestration_client._local_server import _shared

    found = servers_under(root)
    for home in {os.path.dirname(directory) for _, directory in found}:
        _shared.stop(home)
    return found


@pytest.fixture
def local_home(tmp_path: pathlib.Path, template_db: pathlib.Path) -> Iterator[Callable[[str], pathlib.Path]]:
    """``local_home(name)``: a fresh PREFECT_HOME holding the session's migrated database.
    Any shared server started under the test's directory is stopped afterwards."""

    def make(name: str = "home") -> pathlib.Path:
        home = tmp_path / name
        home.mkdir()
        shutil.copy(template_db, home / "prefect.db")
        return home

    yield make
    stop_servers_under(tmp_path)
    assert not servers_under(tmp_path), "a shared local server survived its test's clean-up"


def started_at(pid: int) -> float:
    """When process ``pid`` started (seconds since the epoch), from /proc."""
    ticks = int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot = next(int(line.split()[1]) for line in pathlib.Path("/proc/stat").read_text().splitlines()
                if line.startswith("btime "))
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _real_home_server() -> Set[int]:
    record = REAL_PREFECT_HOME / "orchestration_client" / "server.json"
    try:
        import json

        return {int(json.loads(record.read_text())["pid"])}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


@pytest.fixture(scope="session", autouse=True)
def no_local_server_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fail the session if a test left a shared local server running (and stop it)."""
    before = _real_home_server()
    yield
    leaks = []
    for root in [*_session_home, tmp_path_factory.getbasetemp()]:
        leaks += [f"pid {pid} serving {directory}" for pid, directory in stop_servers_under(root)]
    from orchestration_client._local_server import _shared

    for pid, directory in started_by_this_session():
        _shared.stop(os.path.dirname(directory))
        leaks.append(f"pid {pid} serving {directory}")
    for pid, directory in servers_under(REAL_PREFECT_HOME):
        if pid not in before and started_at(pid) >= SESSION_STARTED - 1:
            _shared.stop(str(REAL_PREFECT_HOME))
            leaks.append(f"pid {pid} serving {directory} (in your real ~/.prefect!)")
    for home in _session_home:
        shutil.rmtree(home, ignore_errors=True)
    if leaks:
        pytest.fail("tests left shared local Prefect servers running (now stopped): "
                    + "; ".join(leaks), pytrace=False)
