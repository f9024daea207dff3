"""The local server's own settings: the idle timeout, the home it lives in, and the Prefect
version installed here. Read from the environment only (none is a Prefect setting)."""

import functools
import glob
import importlib.util
import math
import os
import re
from typing import Mapping, Optional

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "IDLE_TIMEOUT_VARIABLE",
    "MAX_IDLE_TIMEOUT",
    "idle_timeout",
    "installed_prefect_version",
    "prefect_home",
    "shared_server_supported",
]

IDLE_TIMEOUT_VARIABLE = "ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT"
DEFAULT_IDLE_TIMEOUT = 600.0
MAX_IDLE_TIMEOUT = 365 * 24 * 3600.0


def idle_timeout(env: Optional[Mapping[str, str]] = None) -> float:
    """Seconds without a request (and without an open client) after which the shared
    local server stops; 0 means one server per process, stopped with its last client."""
    raw = (os.environ if env is None else env).get(IDLE_TIMEOUT_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_IDLE_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_IDLE_TIMEOUT:  # also refuses nan
        raise ValueError(
            f"{IDLE_TIMEOUT_VARIABLE} must be a number of seconds from 0 (one local server "
            f"per process) to {MAX_IDLE_TIMEOUT:g}, got {raw!r}"
        )
    return value


def prefect_home(env: Optional[Mapping[str, str]] = None) -> str:
    """``PREFECT_HOME`` from the environment (``~`` expanded), else ``~/.prefect``: where
    Prefect keeps its database and where the local server's record lives. Symbolic links
    are resolved, so every spelling of one directory finds the same server."""
    raw = (os.environ if env is None else env).get("PREFECT_HOME", "").strip()
    return os.path.realpath(os.path.expanduser(raw or os.path.join("~", ".prefect")))


@functools.lru_cache(maxsize=1)
def installed_prefect_version() -> Optional[str]:
    """The version of the ``prefect`` that this interpreter would import, or None.

    Read from the name of its ``.dist-info`` directory (no import of ``prefect`` or
    ``importlib.metadata``, which cost tens of milliseconds), else from its metadata."""
    spec = importlib.util.find_spec("prefect")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = next(iter(spec.submodule_search_locations))
    found = glob.glob(os.path.join(os.path.dirname(package), "prefect-*.dist-info"))
    if len(found) == 1:
        match = re.fullmatch(r"prefect-(.+)\.dist-info", os.path.basename(found[0]))
        if match:
            return match[1]
    try:
        from importlib.metadata import version

        return version("prefect")
    except Exception:  # no metadata: an unusual install; versions then never match
        return None


def shared_server_supported() -> bool:
    """The shared server needs ``fcntl.flock``, ``fork`` and sessions (POSIX); elsewhere
    (Windows) every process gets a server of its own, as with a timeout of 0."""
    return os.name == "posix" and hasattr(os, "fork") and hasattr(os, "setsid")
