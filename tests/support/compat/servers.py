"""Real Prefect servers of older releases, each from its own cached virtualenv.

Old releases no longer start with today's newest dependencies; the pins below are what
each needs (measured on this project: without them the server fails at import or start).
"""

import pathlib
import sys
from typing import List

sys.path.insert(0, str(pathlib.Path(__file__).parents[2]))  # tests/, for support.*

from support.compat.venvs import VenvBuildError, cached_venv, find_python
from support.prefect_server import PrefectServer

__all__ = ["CI_SERVERS", "MATRIX", "VenvBuildError", "pins", "server", "server_venv"]

#: The servers the test suite runs against (CI never skips them).
CI_SERVERS = ["3.0.11", "3.4.25", "3.6.29", "3.9.1"]
#: The last patch of every 3.x minor on PyPI, plus the last 2.x for information.
MATRIX = ["2.20.27", "3.0.11", "3.1.15", "3.2.15", "3.3.7", "3.4.25", "3.5.0", "3.6.29",
          "3.7.8", "3.8.8", "3.9.1"]  # fmt: skip
#: Server venvs are built with this interpreter (every release above supports it).
SERVER_PYTHON_MINORS = ["3.11", "3.12"]


def pins(version: str) -> List[str]:
    """Dependency pins that let Prefect ``version`` start today."""
    minor = tuple(int(x) for x in version.split(".")[:2])
    if minor < (3, 0):
        return ["fastapi==0.115.14", "starlette==0.46.2", "importlib_metadata"]
    if minor == (3, 0):
        return ["pydantic==2.9.2", "fastapi==0.115.4", "SQLAlchemy==2.0.36", "starlette==0.41.3"]
    if minor <= (3, 5):
        return ["fastapi==0.115.14", "starlette==0.46.2", "importlib_metadata"]
    if minor == (3, 6):
        return ["fastapi==0.115.14", "starlette==0.46.2"]
    return ["fastapi<0.151"]


def server_python() -> str:
    for minor in SERVER_PYTHON_MINORS:
        found = find_python(minor)
        if found:
            return found
    raise RuntimeError(
        f"no Python {' or '.join(SERVER_PYTHON_MINORS)} found (looked in pyenv and on PATH); "
        "the compatibility servers need one"
    )


def server_venv(version: str) -> pathlib.Path:
    """The cached venv holding Prefect ``version`` (built on first use)."""
    requirements = [f"prefect=={version}", *pins(version)]
    return cached_venv("servers", f"prefect-{version}", server_python(), requirements)


#: Servers before 3.1 have no ``--no-services``; these turn their background services off.
NO_SERVICES_ENV = {
    f"PREFECT_API_SERVICES_{name}_ENABLED": "false"
    for name in ["SCHEDULER", "LATE_RUNS", "FLOW_RUN_NOTIFICATIONS", "PAUSE_EXPIRATIONS",
                 "CANCELLATION_CLEANUP", "FOREMAN", "TASK_RUN_RECORDER", "EVENT_PERSISTER",
                 "TRIGGERS", "EVENT_LOGGER", "TELEMETRY"]
}  # fmt: skip


def server(version: str, home: pathlib.Path) -> PrefectServer:
    """An unstarted ``PrefectServer`` of ``version`` with a fresh database in ``home``."""
    old = tuple(int(x) for x in version.split(".")[:2]) < (3, 1)
    return PrefectServer(
        home,
        executable=str(server_venv(version) / "bin" / "prefect"),
        no_services_flag=not old,
        env=NO_SERVICES_ENV if old else None,
    )


if __name__ == "__main__":  # build the given versions: python tests/support/compat/servers.py 3.0.11 ...
    for wanted in sys.argv[1:] or CI_SERVERS:
        print(wanted, server_venv(wanted), flush=True)
