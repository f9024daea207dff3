"""``python -m orchestration_client server status|stop|start``: the shared local server of
``PREFECT_HOME`` (from the environment, default ``~/.prefect``).

* ``status``: its URL, pid, Prefect version, idle timeout, age, interpreter and log; exit 0
  when one is running, 1 when none is. The credential is never shown.
* ``stop``: stop it (SIGTERM, then SIGKILL after 20 s), even while scripts use it; exit 0,
  also when none was running.
* ``start``: start it now, or find it running (``ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT``
  applies), and print its URL; handy to pay the start-up time before a batch of scripts.
  It gets the server settings a script in this directory would have (``server_settings``,
  passed in by ``__main__``). Needs the ``server`` extra.
"""

import argparse
import os
import sys
import time
from typing import Callable, List, Mapping, Optional

from ._options import IDLE_TIMEOUT_VARIABLE, prefect_home

__all__ = ["main"]


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _status(home: str) -> int:
    from . import _files
    from ._shared import status, stop_command

    found = status(home)
    print(found.message)
    if not found.running or found.record is None:
        return 1
    record = found.record
    print(f"  url:            {record.url}")
    print(f"  pid:            {record.pid}")
    print(f"  Prefect:        {record.prefect_version}")
    print(f"  idle timeout:   {record.idle_timeout:g} s (stops after that long with no "
          "request and no open client)")  # fmt: skip
    print(f"  running for:    {_age(time.time() - record.started_at)}")
    print(f"  python:         {record.python}")
    print(f"  log:            {os.path.join(home, _files.DIRECTORY, _files.LOG)}")
    print(f"  stop it with:   {stop_command()}")
    return 0


def _stop(home: str) -> int:
    from ._shared import stop

    print(stop(home))
    return 0


def _start(home: str, settings: Mapping[str, str]) -> int:
    from ._common import DEFAULT_STARTUP_TIMEOUT, require_server_extra
    from ._options import idle_timeout, shared_server_supported
    from ._shared import Fallback, connect

    idle = idle_timeout()
    if idle == 0:
        print(f"{IDLE_TIMEOUT_VARIABLE}=0 gives every process a server of its own: there is "
              "no shared server to start", file=sys.stderr)  # fmt: skip
        return 2
    if not shared_server_supported():
        print("the shared local server needs fcntl and fork (POSIX)", file=sys.stderr)
        return 2
    require_server_extra()
    server = connect(home, idle, DEFAULT_STARTUP_TIMEOUT, settings)
    if isinstance(server, Fallback):
        print(f"not started: {server.reason}", file=sys.stderr)
        return 1
    try:
        done = "started" if server.started_in is not None else "already running:"
        print(f"{done} {server.record.url} (pid {server.record.pid}; stops after "
              f"{server.record.idle_timeout:g} s with no request and no open client)")  # fmt: skip
        if server.note:
            print(server.note)
    finally:
        server.stop()
    return 0


def main(
    argv: Optional[List[str]] = None,
    server_settings: Optional[Callable[[], Mapping[str, str]]] = None,
) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestration_client",
        description="Manage the local Prefect server that orchestration_client starts when "
        "no PREFECT_API_URL is configured (one per PREFECT_HOME, shared by your scripts).",
    )
    commands = parser.add_subparsers(dest="group", required=True)
    server = commands.add_parser("server", help="the shared local Prefect server")
    actions = server.add_subparsers(dest="action", required=True)
    actions.add_parser("status", help="show it; exit 0 if running, 1 if not")
    actions.add_parser("stop", help="stop it (exit 0 also when none was running)")
    actions.add_parser("start", help="start it now, or find it running, and print its URL")
    arguments = parser.parse_args(argv)
    home = prefect_home()
    try:
        if arguments.action == "status":
            return _status(home)
        if arguments.action == "stop":
            return _stop(home)
        return _start(home, server_settings() if server_settings else {})
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
