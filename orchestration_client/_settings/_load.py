"""Client settings, read from the same sources as Prefect 3.9, into a frozen Struct.

Each setting takes the first value found in, from highest to lowest priority:

1. the environment (``PREFECT_API_URL``, ...);
2. ``.env`` in the current directory (same names, any case);
3. ``prefect.toml`` in the current directory (``[api] url = ...``);
4. ``pyproject.toml`` in the current directory (``[tool.prefect.api] url = ...``);
5. the active profile of the profiles file (``PREFECT_API_URL = ...``), see
   ``_files``.

Arguments given to ``get_client`` / ``SyncPrefectClient`` win over all of them. A value
that is present but empty counts as set (to "nothing") and hides lower sources, as in
Prefect. Settings are read whenever a client is built, so a changed environment or file is
seen by the next client; files are only re-parsed when they change.

A value that would make every call fail (a zero timeout, a malformed URL, ...) raises
``ValueError`` naming the variable and where it came from.
"""

import json
import os
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, NamedTuple, Optional, Tuple

import msgspec

from . import _headers
from ._files import find_profile, read_dotenv, read_toml, toml_table

__all__ = [
    "DEFAULT_CLOUD_API_URL",
    "DEFAULT_RETRY_500_SECONDS",
    "MAX_RETRIES_LIMIT",
    "RETRY_500_VARIABLE",
    "Settings",
    "load_settings",
    "settings_variables",
]

DEFAULT_CLOUD_API_URL = "https://api.prefect.cloud/api"
#: Waits double with each retry (2, 4, ... s): 10 retries already wait up to 34 minutes.
MAX_RETRIES_LIMIT = 10

_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})
_ENV_ONLY_CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
#: How long after a call's first 500 reply it may still be retried, by default, in seconds.
DEFAULT_RETRY_500_SECONDS = 20.0
#: The setting that changes it (not a Prefect setting: read from the environment only).
RETRY_500_VARIABLE = "ORCHESTRATION_CLIENT_RETRY_500_SECONDS"
# Every variable read below starts with one of these (Prefect's settings in any case).
_ENV_PREFIXES = ("PREFECT_", "HOME", RETRY_500_VARIABLE, *_ENV_ONLY_CA_VARIABLES)
#: The longest ``ORCHESTRATION_CLIENT_RETRY_500_SECONDS`` accepted (an hour); in practice
#: ``PREFECT_CLIENT_MAX_RETRIES`` ends the retries well before (10 retries: about 6 minutes).
MAX_RETRY_500_SECONDS = 3600.0


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Client settings. ``api_key`` and ``auth_string`` never show in ``repr``.

    ``origins`` says where each setting that was not left at its default came from, and
    ``profile`` which profile was consulted; both are for messages.
    """

    api_url: Optional[str] = None
    api_key: Optional[str] = None
    auth_string: Optional[str] = None
    request_timeout: float = 60.0
    tls_insecure_skip_verify: bool = False
    ssl_cert_file: Optional[str] = None
    max_retries: int = 5
    retry_jitter_factor: float = 0.2
    retry_extra_codes: FrozenSet[int] = frozenset()
    retry_500_seconds: float = DEFAULT_RETRY_500_SECONDS
    csrf_support_enabled: bool = True
    custom_headers: Dict[str, str] = msgspec.field(default_factory=dict)
    cloud_api_url: str = DEFAULT_CLOUD_API_URL
    unit_test_mode: bool = False
    ephemeral_enabled: Optional[bool] = None
    ephemeral_startup_timeout: Optional[float] = None
    attribution_headers: Dict[str, str] = msgspec.field(default_factory=dict)
    origins: Dict[str, str] = msgspec.field(default_factory=dict)
    profile: str = "no profile"

    def __repr__(self) -> str:
        shown = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name in ("api_key", "auth_string") and value is not None:
                value = "********"
            shown.append(f"{name}={value!r}")
        return f"Settings({', '.join(shown)})"

    def searched(self) -> str:
        """Every place a setting is looked for, as a phrase for messages."""
        return f"environment, .env, prefect.toml, pyproject.toml or {self.profile}"


# ---- conversions: (raw value, variable name) -> value, ValueError without the origin ----


def _text(raw: Any, name: str) -> Optional[str]:
    if not isinstance(raw, str):
        raise ValueError(f"{name} must be a string, got {raw!r}")
    return raw.strip() or None


def _secret(raw: Any, name: str) -> Optional[str]:
    if not isinstance(raw, str):
        raise ValueError(f"{name} must be a string")  # not shown: it may be a secret
    return _headers.secret(raw.strip(), name) or None


def _url(raw: Any, name: str) -> Optional[str]:
    value = _secret(raw, name)
    if value is not None and not value.lower().startswith(("http://", "https://")):
        # The value is not shown: it may carry a password.
        raise ValueError(f"{name} must start with http:// or https://")
    return value


def _boolean(raw: Any, name: str) -> Optional[bool]:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        lowered = raw.strip().lower()
        if not lowered:
            return None
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


def _float(raw: Any, name: str) -> Optional[float]:
    if isinstance(raw, str):
        if not raw.strip():
            return None
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return float(raw)
    raise ValueError(f"{name} must be a number, got {raw!r}")


#: The longest timeout accepted (a year): a larger one cannot be given to a socket.
MAX_TIMEOUT = 365 * 24 * 3600.0


def _positive(raw: Any, name: str) -> Optional[float]:
    value = _float(raw, name)
    if value is not None and not (0 < value <= MAX_TIMEOUT):
        raise ValueError(
            f"{name} must be a number of seconds > 0 and at most {MAX_TIMEOUT:g}, got {raw!r}"
        )
    return value


def _retry_seconds(raw: Any, name: str) -> Optional[float]:
    value = _float(raw, name)
    if value is not None and not (0 <= value <= MAX_RETRY_500_SECONDS):
        raise ValueError(
            f"{name} must be a number of seconds from 0 (never retry a 500) to "
            f"{MAX_RETRY_500_SECONDS:g}, got {raw!r}"
        )
    return value


def _jitter(raw: Any, name: str) -> Optional[float]:
    value = _float(raw, name)
    if value is not None and not 0 <= value <= 1:
        raise ValueError(
            f"{name} must be between 0 and 1 (the fraction by which waits may vary), got {raw!r}"
        )
    return value


def _retries(raw: Any, name: str) -> Optional[int]:
    if isinstance(raw, str):
        if not raw.strip():
            return None
        try:
            number = float(raw)  # "3" or "3.0", as pydantic reads an int
        except ValueError:
            raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
        if not number.is_integer():
            raise ValueError(f"{name} must be a whole number, got {raw!r}")
        value = int(number)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    else:
        raise ValueError(f"{name} must be a whole number, got {raw!r}")
    if not 0 <= value <= MAX_RETRIES_LIMIT:
        raise ValueError(
            f"{name} must be between 0 and {MAX_RETRIES_LIMIT} (each retry waits twice as "
            f"long as the one before), got {raw!r}"
        )
    return value


def _status_codes(raw: Any, name: str) -> FrozenSet[int]:
    if isinstance(raw, str):
        items: List[Any] = [item.strip() for item in raw.strip().strip("[]").split(",")]
    elif isinstance(raw, (list, tuple)):
        items = list(raw)
    else:
        items = [raw]
    codes = set()
    for item in items:
        if item == "":
            continue
        if isinstance(item, str) and item.isdigit():
            item = int(item)
        if not isinstance(item, int) or isinstance(item, bool) or not 100 <= item <= 599:
            raise ValueError(f"{name} must list HTTP status codes like '404,500', got {raw!r}")
        if item < 400:
            raise ValueError(
                f"{name} lists {item}, which is not an error status: every such reply "
                f"would be retried; list codes from 400 to 599, got {raw!r}"
            )
        codes.add(item)
    return frozenset(codes)


def _header_map(raw: Any, name: str) -> Dict[str, str]:
    value = raw
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        try:
            value = json.loads(raw)
        except ValueError:
            raise ValueError(f"{name} must be a JSON object of header names to values") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"{name} must be a JSON object of header names to string values")
    _headers.checked(value, name)  # names are tokens, values carry no control characters
    return dict(value)


class _Spec(NamedTuple):
    field: str
    names: Tuple[str, ...]  # variable names; within one source, the first present wins
    table: Tuple[str, ...]  # where prefect.toml keeps it
    convert: Callable[[Any, str], Any]
    is_table: bool = False  # a TOML table is a value, not a nested section


_SPECS = (
    _Spec("api_url", ("PREFECT_API_URL",), ("api", "url"), _url),
    _Spec("api_key", ("PREFECT_API_KEY",), ("api", "key"), _secret),
    _Spec("auth_string", ("PREFECT_API_AUTH_STRING",), ("api", "auth_string"), _secret),
    _Spec("request_timeout", ("PREFECT_API_REQUEST_TIMEOUT",), ("api", "request_timeout"),
          _positive),
    _Spec("tls_insecure_skip_verify", ("PREFECT_API_TLS_INSECURE_SKIP_VERIFY",),
          ("api", "tls_insecure_skip_verify"), _boolean),
    _Spec("ssl_cert_file", ("PREFECT_API_SSL_CERT_FILE",), ("api", "ssl_cert_file"), _text),
    _Spec("max_retries", ("PREFECT_CLIENT_MAX_RETRIES",), ("client", "max_retries"), _retries),
    _Spec("retry_jitter_factor", ("PREFECT_CLIENT_RETRY_JITTER_FACTOR",),
          ("client", "retry_jitter_factor"), _jitter),
    _Spec("retry_extra_codes", ("PREFECT_CLIENT_RETRY_EXTRA_CODES",),
          ("client", "retry_extra_codes"), _status_codes),
    _Spec("csrf_support_enabled", ("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED",),
          ("client", "csrf_support_enabled"), _boolean),
    _Spec("custom_headers", ("PREFECT_CLIENT_CUSTOM_HEADERS",), ("client", "custom_headers"),
          _header_map, is_table=True),
    _Spec("cloud_api_url", ("PREFECT_CLOUD_API_URL",), ("cloud", "api_url"), _url),
    _Spec("unit_test_mode", ("PREFECT_TESTING_UNIT_TEST_MODE", "PREFECT_UNIT_TEST_MODE"),
          ("testing", "unit_test_mode"), _boolean),
    _Spec("ephemeral_enabled",
          ("PREFECT_SERVER_EPHEMERAL_ENABLED", "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"),
          ("server", "ephemeral", "enabled"), _boolean),
    _Spec("ephemeral_startup_timeout", ("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",),
          ("server", "ephemeral", "startup_timeout_seconds"), _positive),
)  # fmt: skip

# Headers that tell the server who is calling, taken from the environment of a worker or
# flow run (Prefect reads the same variables, from the environment only).
_ATTRIBUTION = (
    ("X-Prefect-Worker-Id", "PREFECT__WORKER_ID"),
    ("X-Prefect-Worker-Name", "PREFECT__WORKER_NAME"),
    ("X-Prefect-Flow-Id", "PREFECT__FLOW_ID"),
    ("X-Prefect-Flow-Name", "PREFECT__FLOW_NAME"),
    ("X-Prefect-Deployment-Id", "PREFECT__DEPLOYMENT_ID"),
    ("X-Prefect-Deployment-Name", "PREFECT__DEPLOYMENT_NAME"),
)

# A source: a phrase naming it, and a lookup from a spec to (raw value, where) or None.
_Lookup = Callable[[_Spec], Optional[Tuple[Any, str]]]


def _by_name(values: Mapping[str, Any], label: str, lower: bool = False) -> _Lookup:
    def lookup(spec: _Spec) -> Optional[Tuple[Any, str]]:
        for name in spec.names:
            value = values.get(name.lower() if lower else name)
            if value is not None:
                return value, label.format(name=name)
        return None

    return lookup


def _by_table(document: Mapping[str, Any], prefix: Tuple[str, ...], path: str) -> _Lookup:
    def lookup(spec: _Spec) -> Optional[Tuple[Any, str]]:
        value = toml_table(document, prefix + spec.table)
        if value is None or (isinstance(value, dict) and not spec.is_table):
            return None
        section = ".".join(prefix + spec.table[:-1])
        return value, f"{path}, [{section}] {spec.table[-1]}"

    return lookup


def settings_variables(env: Mapping[str, str]) -> Dict[str, str]:
    """Prefect's settings in ``env`` by lower-case name: Prefect matches names in any case
    and, when two spellings of one name are set, takes the one that comes later in the
    environment. (``PREFECT_PROFILE``, ``PREFECT_HOME`` for the profiles file, the test-mode
    switches and ``PREFECT__*`` are read by their exact names, by Prefect and by us.)"""
    return {k.lower(): v for k, v in env.items() if k[:8].upper() == "PREFECT_"}


def _start_directory() -> str:
    try:
        return os.getcwd()
    except OSError:  # the directory was removed: it holds no files either
        return ""


#: Where ``.env``, ``prefect.toml`` and ``pyproject.toml`` are looked for: the working
#: directory when this package was imported. Prefect reads them once, when ``prefect`` is
#: imported, so a later ``os.chdir`` into another project does not switch servers.
START_DIRECTORY = _start_directory()


def load_settings(
    env: Optional[Mapping[str, str]] = None, *, cwd: Optional[str] = None
) -> Settings:
    """Read the settings from ``env`` (default: ``os.environ``) and the settings files
    Prefect reads from ``cwd`` (default: ``START_DIRECTORY``) and the profiles file."""
    environ = os.environ if env is None else env  # .env may expand any variable
    if env is None:
        # One pass over the environment: a missing key costs os.environ an exception.
        env = {k: v for k, v in os.environ.items() if k.upper().startswith(_ENV_PREFIXES)}
    if cwd is None:
        cwd = START_DIRECTORY
    dotenv_path = os.path.join(cwd, ".env")
    toml_path = os.path.join(cwd, "prefect.toml")
    pyproject_path = os.path.join(cwd, "pyproject.toml")
    dotenv = read_dotenv(dotenv_path, environ)
    prefect_toml = read_toml(toml_path)
    pyproject = read_toml(pyproject_path)
    profile = find_profile(env, cwd, dotenv, prefect_toml, pyproject)

    sources: List[_Lookup] = [_by_name(settings_variables(env), "{name} in the environment", True)]
    if dotenv:
        lowered = {key.lower(): value for key, value in dotenv.items()}
        sources.append(_by_name(lowered, f"{{name}} in {dotenv_path}", lower=True))
    if prefect_toml:
        sources.append(_by_table(prefect_toml, (), toml_path))
    if pyproject:
        sources.append(_by_table(pyproject, ("tool", "prefect"), pyproject_path))
    if profile.values:
        sources.append(_by_name(profile.values, f"{{name}} in {profile.description}"))

    values: Dict[str, Any] = {}
    origins: Dict[str, str] = {}
    for spec in _SPECS:
        for source in sources:
            found = source(spec)
            if found is None:
                continue
            raw, where = found
            try:
                value = spec.convert(raw, spec.names[0])
            except ValueError as exc:
                raise ValueError(f"{exc} (from {where})") from None
            origins[spec.field] = where
            if value is not None:
                values[spec.field] = value
            break

    if "ssl_cert_file" not in values:
        # Prefect's default for its own variable, then what ssl and requests users set.
        for name in _ENV_ONLY_CA_VARIABLES:
            ca_file = (env.get(name) or "").strip()
            if ca_file:
                values["ssl_cert_file"] = ca_file
                origins["ssl_cert_file"] = f"{name} in the environment"
                break
    # Not a Prefect setting: from the environment only, like ORCHESTRATION_CLIENT_MAX_REPLY_BYTES.
    raw_seconds = env.get(RETRY_500_VARIABLE)
    if raw_seconds is not None:
        where = f"{RETRY_500_VARIABLE} in the environment"
        try:
            seconds = _retry_seconds(raw_seconds, RETRY_500_VARIABLE)
        except ValueError as exc:
            raise ValueError(f"{exc} (from {where})") from None
        if seconds is not None:
            values["retry_500_seconds"] = seconds
            origins["retry_500_seconds"] = where
    attribution = {}
    for header, variable in _ATTRIBUTION:
        value = (env.get(variable) or "").strip()
        if value:
            attribution[header] = value
    return Settings(
        **values, attribution_headers=attribution, origins=origins, profile=profile.description
    )
