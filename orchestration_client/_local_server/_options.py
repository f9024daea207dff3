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
    "server_environment",
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


def server_environment(forced: Mapping[str, str]) -> Dict[str, str]:
    """This process's environment for the server's process, with ``forced`` on top. Prefect
    reads setting names in any case, the later spelling winning, so every other spelling of
    a forced name is left out: a ``prefect_server_api_auth_string`` of the user's can never
    stand in for the credential the server is given."""
    names = {name.upper() for name in forced}
    kept = {name: value for name, value in os.environ.items() if name.upper() not in names}
    return {**kept, **forced}


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

#: Names of the Prefect settings a server reads: every ``PREFECT_SERVER_*`` and the older
#: names Prefect 3.9 still accepts for them, and the plugin switches its database
#: configuration consults. Client-side settings with server-looking names
#: (``PREFECT_TASK_SCHEDULING_DEFAULT_STORAGE_BLOCK``, ``PREFECT_EXPERIMENTS_WARN``,
#: ``PREFECT_EVENTS_WORKER_MAX_QUEUE_SIZE``) are not among them.
_SERVER_PREFIXES = (
    "PREFECT_SERVER_", "PREFECT_API_DATABASE_", "PREFECT_API_SERVICES_", "PREFECT_API_EVENTS_",
    "PREFECT_API_MAX_FLOW_RUN_GRAPH_", "PREFECT_SQLALCHEMY_", "PREFECT_MESSAGING_",
    "PREFECT_API_BLOCKS_REGISTER_ON_START", "PREFECT_API_DEFAULT_LIMIT",
    "PREFECT_API_ENABLE_METRICS", "PREFECT_API_LOG_RETRYABLE_ERRORS",
    "PREFECT_API_TASK_CACHE_KEY_MAX_LENGTH", "PREFECT_LOGGING_SERVER_LEVEL",
    "PREFECT_MEMOIZE_BLOCK_AUTO_REGISTRATION", "PREFECT_MEMO_STORE_PATH",
    "PREFECT_DEPLOYMENT_SCHEDULE_MAX_SCHEDULED_RUNS",
    "PREFECT_DEPLOYMENT_CONCURRENCY_SLOT_WAIT_SECONDS", "PREFECT_EVENTS_MAXIMUM_",
    "PREFECT_EVENTS_EXPIRED_BUCKET_BUFFER", "PREFECT_EVENTS_PROACTIVE_GRANULARITY",
    "PREFECT_EVENTS_RETENTION_PERIOD", "PREFECT_EVENTS_WEBSOCKET_BACKFILL_PAGE_SIZE",
    "PREFECT_TASK_RUN_TAG_CONCURRENCY_SLOT_WAIT_SECONDS",
    "PREFECT_TASK_SCHEDULING_MAX_SCHEDULED_QUEUE_SIZE",
    "PREFECT_TASK_SCHEDULING_MAX_RETRY_QUEUE_SIZE",
    "PREFECT_TASK_SCHEDULING_PENDING_TASK_TIMEOUT",
    "PREFECT_PLUGINS_ENABLED", "PREFECT_PLUGINS_ALLOW", "PREFECT_PLUGINS_DENY",
    "PREFECT_EXPERIMENTS_PLUGINS_ENABLED", "PREFECT_EXPERIMENTS_PLUGINS_ALLOW",
    "PREFECT_EXPERIMENTS_PLUGINS_DENY",
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


# Which server settings Prefect reads as a boolean or as a number, by how their names end
# (tests/unit/test_local_server_files.py checks every name of the installed Prefect): their
# values are compared as Prefect reads them, so ``10`` and ``10.0``, ``true`` and ``1`` are
# one value. Any other value is compared as written (a name not listed here, a timedelta).
_BOOLEAN_ENDINGS = (
    "_ENABLED", "_ECHO", "_ON_START", "_AUTO_REGISTRATION", "_RETRYABLE_ERRORS",
    "_ENABLE_METRICS", "_CHECK_HOSTNAME", "_PROMOTIONAL_CONTENT", "_ALLOW_EPHEMERAL_MODE",
)  # fmt: skip
_NUMBER_ENDINGS = (
    "_SECONDS", "_SIZE", "_TIMEOUT", "_LIMIT", "_PORT", "_INTERVAL", "_RUNS", "_NODES",
    "_ARTIFACTS", "_LENGTH", "_BYTES", "_RESOURCE", "_RESOURCES", "_MULTIPLE", "_DURATION",
    "_ATTEMPTS", "_RETRIES", "_OVERFLOW", "_RECYCLE",
)  # fmt: skip
#: Names with such endings whose value is something else (a set, a timedelta).
_OTHER_ENDINGS = ("_DB_VACUUM_ENABLED", "_LATE_RUNS_AFTER_SECONDS", "_PENDING_TASK_TIMEOUT")
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})
_DECIMAL = re.compile(r"\s*([+-]?)(\d*)(?:\.(\d*))?\s*")


def value_kind(name: str) -> Optional[str]:
    """``"boolean"`` or ``"number"`` if Prefect reads server setting ``name`` as one, else
    None (compared as text)."""
    name = name.upper()
    if name.endswith(_OTHER_ENDINGS):
        return None
    if name.endswith(_BOOLEAN_ENDINGS):
        return "boolean"
    if name.endswith(_NUMBER_ENDINGS):
        return "number"
    return None


def normalised_value(name: str, value: str) -> str:
    """``value`` of server setting ``name`` in one spelling per value Prefect reads from it:
    booleans as ``true``/``false`` (pydantic's words, any case, no spaces), plain decimal
    numbers without sign, leading or trailing zeros and surrounding spaces. Anything else
    (text, a value Prefect would refuse) as it is."""
    kind = value_kind(name)
    if kind == "boolean":
        lowered = value.lower()
        return "true" if lowered in _TRUE else "false" if lowered in _FALSE else value
    if kind == "number":
        found = _DECIMAL.fullmatch(value)
        if found is not None and (found[2] or found[3]):
            whole, fraction = found[2].lstrip("0") or "0", (found[3] or "").rstrip("0")
            sign = "-" if found[1] == "-" and (whole != "0" or fraction) else ""
            return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"
    return value


def fingerprint(settings: Mapping[str, str], salt: str) -> Dict[str, str]:
    """Each setting's name with a salted hash of its value: what a server's record keeps,
    so that no value (a database password) is written down. Names count in upper case,
    as Prefect matches them in any case, and values as ``normalised_value`` spells them."""
    found = {}
    for name, value in settings.items():
        name = name.upper()
        value = normalised_value(name, value)
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
