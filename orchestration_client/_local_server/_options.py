"""The local server's own settings (the idle timeout, the home it lives in), the Prefect
version installed here, and which of Prefect's settings are the server's."""

import glob
import hashlib
import importlib.util
import math
import os
import re
from typing import Dict, List, Mapping, Optional, Tuple

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "IDLE_TIMEOUT_VARIABLE",
    "MAX_IDLE_TIMEOUT",
    "differing_settings",
    "fingerprint",
    "idle_timeout",
    "installed_prefect_version",
    "is_server_setting",
    "newer",
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
    are resolved, so every spelling of one directory finds the same server. The name counts
    in any case, the later spelling winning, as for Prefect's ``home`` setting (where the
    server keeps its database)."""
    raw = ""
    for name, value in (os.environ if env is None else env).items():
        if name.upper() == "PREFECT_HOME":
            raw = value.strip()
    return os.path.realpath(os.path.expanduser(raw or os.path.join("~", ".prefect")))


def installed_prefect_version() -> Optional[str]:
    """The version of the ``prefect`` that this interpreter would import now, or None.

    Read from the name of its ``.dist-info`` directory (no import of ``prefect`` or
    ``importlib.metadata``, which cost tens of milliseconds), else from its metadata.
    Read again at every call (a fraction of a millisecond): a long-running process sees
    an upgrade made while it runs, as the server it starts will."""
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


def _release(version: str) -> Optional[Tuple[int, ...]]:
    found = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(part) for part in found[0].split(".")) if found else None


def newer(version: str, than: str) -> Optional[bool]:
    """Whether Prefect ``version`` is a later release than ``than``; None when they cannot
    be ordered (the same release, or not a version number)."""
    first, second = _release(version), _release(than)
    if first is None or second is None or first == second:
        return None
    return first > second


# ---- the server's settings ----------------------------------------------------------------

#: Names of the Prefect settings a server reads (its current names and the older aliases
#: Prefect 3 still accepts); a client's own settings are not among them.
_SERVER_PREFIXES = (
    "PREFECT_SERVER_", "PREFECT_API_DATABASE_", "PREFECT_API_SERVICES_",
    "PREFECT_API_BLOCKS_", "PREFECT_API_EVENTS_", "PREFECT_API_MAX_FLOW_RUN_GRAPH_",
    "PREFECT_API_DEFAULT_LIMIT", "PREFECT_API_ENABLE_METRICS",
    "PREFECT_API_LOG_RETRYABLE_ERRORS", "PREFECT_API_TASK_CACHE_KEY_MAX_LENGTH",
    "PREFECT_DEPLOYMENT_", "PREFECT_EVENTS_", "PREFECT_EXPERIMENTS_",
    "PREFECT_LOGGING_SERVER_", "PREFECT_MEMO_STORE_PATH", "PREFECT_MEMOIZE_",
    "PREFECT_MESSAGING_", "PREFECT_SQLALCHEMY_", "PREFECT_TASK_RUN_TAG_CONCURRENCY_",
    "PREFECT_TASK_SCHEDULING_",
)  # fmt: skip
#: Server settings that the shared server sets itself, or that only a client reads.
_NOT_COMPARED = (
    "PREFECT_SERVER_API_AUTH_STRING", "PREFECT_SERVER_API_HOST", "PREFECT_SERVER_API_PORT",
    "PREFECT_SERVER_EPHEMERAL_", "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "PREFECT_SERVER_UI_",
    "PREFECT_SERVER_ANALYTICS_ENABLED",
)  # fmt: skip


def is_server_setting(name: str) -> bool:
    """``name`` (in any case: Prefect matches them so) is a setting of Prefect's server
    that makes a difference to what a script sees (its database, services, limits)."""
    name = name.upper()
    return name.startswith(_SERVER_PREFIXES) and not name.startswith(_NOT_COMPARED)


def fingerprint(settings: Mapping[str, str], salt: str) -> Dict[str, str]:
    """Each setting's name with a salted hash of its value: what a server's record keeps,
    so that no value (a database password) is written down. Names count in upper case,
    as Prefect matches them in any case."""
    found = {}
    for name, value in settings.items():
        name = name.upper()
        found[name] = hashlib.sha256(
            f"{salt}\0{name}\0{value}".encode("utf-8", "surrogateescape")
        ).hexdigest()[:32]
    return found


def differing_settings(
    recorded: Mapping[str, str], salt: str, settings: Mapping[str, str]
) -> List[str]:
    """The names of the server settings that differ between a server's record and
    ``settings`` (set on one side only, or to other values)."""
    mine = fingerprint(settings, salt)
    return sorted(
        name for name in set(recorded) | set(mine) if recorded.get(name) != mine.get(name)
    )
