"""The ``PREFECT_*`` environment, read once into a frozen Struct with Prefect's defaults.

Only environment variables are read: Prefect's profiles file, ``.env`` and
``prefect.toml`` are not. A malformed value raises ``ValueError`` naming the variable.
"""

import json
import os
from typing import Dict, FrozenSet, Mapping, Optional

import msgspec

__all__ = ["DEFAULT_CLOUD_API_URL", "Settings", "load_settings"]

DEFAULT_CLOUD_API_URL = "https://api.prefect.cloud/api"

_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Client settings. ``api_key`` and ``auth_string`` never show in ``repr``."""

    api_url: Optional[str] = None
    api_key: Optional[str] = None
    auth_string: Optional[str] = None
    request_timeout: float = 60.0
    tls_insecure_skip_verify: bool = False
    ssl_cert_file: Optional[str] = None
    max_retries: int = 5
    retry_jitter_factor: float = 0.2
    retry_extra_codes: FrozenSet[int] = frozenset()
    csrf_support_enabled: bool = True
    custom_headers: Dict[str, str] = msgspec.field(default_factory=dict)
    cloud_api_url: str = DEFAULT_CLOUD_API_URL
    unit_test_mode: bool = False
    ephemeral_enabled: Optional[bool] = None
    ephemeral_startup_timeout: Optional[float] = None
    attribution_headers: Dict[str, str] = msgspec.field(default_factory=dict)

    def __repr__(self) -> str:
        shown = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name in ("api_key", "auth_string") and value is not None:
                value = "********"
            shown.append(f"{name}={value!r}")
        return f"Settings({', '.join(shown)})"


def _first(env: Mapping[str, str], *names: str) -> Optional[str]:
    for name in names:
        value = env.get(name)
        if value is not None and value.strip() != "":
            return value.strip()
    return None


def _bool(env: Mapping[str, str], default: bool, *names: str) -> bool:
    raw = _first(env, *names)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{names[0]} must be true or false, got {raw!r}")


def _number(env: Mapping[str, str], default: float, name: str, *, minimum: float = 0.0) -> float:
    raw = _first(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not value >= minimum or value == float("inf"):
        raise ValueError(f"{name} must be a finite number >= {minimum:g}, got {raw!r}")
    return value


def _integer(env: Mapping[str, str], default: int, name: str) -> int:
    raw = _first(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {raw!r}")
    return value


def _status_codes(env: Mapping[str, str], name: str) -> FrozenSet[int]:
    raw = _first(env, name)
    if raw is None:
        return frozenset()
    codes = set()
    for item in raw.strip("[]").split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isdigit() or not 100 <= int(item) <= 599:
            raise ValueError(f"{name} must list HTTP status codes like '404,500', got {raw!r}")
        codes.add(int(item))
    return frozenset(codes)


def _headers(env: Mapping[str, str], name: str) -> Dict[str, str]:
    raw = _first(env, name)
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValueError(f"{name} must be a JSON object of header names to values") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"{name} must be a JSON object of header names to string values")
    return value


# Headers that tell the server who is calling, taken from the environment of a worker or
# flow run (Prefect reads the same variables).
_ATTRIBUTION = (
    ("X-Prefect-Worker-Id", "PREFECT__WORKER_ID"),
    ("X-Prefect-Worker-Name", "PREFECT__WORKER_NAME"),
    ("X-Prefect-Flow-Id", "PREFECT__FLOW_ID"),
    ("X-Prefect-Flow-Name", "PREFECT__FLOW_NAME"),
    ("X-Prefect-Deployment-Id", "PREFECT__DEPLOYMENT_ID"),
    ("X-Prefect-Deployment-Name", "PREFECT__DEPLOYMENT_NAME"),
)


def load_settings(env: Optional[Mapping[str, str]] = None) -> Settings:
    """Read the settings from ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    ephemeral_raw = _first(
        env, "PREFECT_SERVER_EPHEMERAL_ENABLED", "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"
    )
    return Settings(
        api_url=_first(env, "PREFECT_API_URL"),
        api_key=_first(env, "PREFECT_API_KEY"),
        auth_string=_first(env, "PREFECT_API_AUTH_STRING"),
        request_timeout=_number(env, 60.0, "PREFECT_API_REQUEST_TIMEOUT"),
        tls_insecure_skip_verify=_bool(env, False, "PREFECT_API_TLS_INSECURE_SKIP_VERIFY"),
        # Prefect's variable, then the ones Python's ssl and requests users already set.
        ssl_cert_file=_first(
            env,
            "PREFECT_API_SSL_CERT_FILE",
            "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
        ),
        max_retries=_integer(env, 5, "PREFECT_CLIENT_MAX_RETRIES"),
        retry_jitter_factor=_number(env, 0.2, "PREFECT_CLIENT_RETRY_JITTER_FACTOR"),
        retry_extra_codes=_status_codes(env, "PREFECT_CLIENT_RETRY_EXTRA_CODES"),
        csrf_support_enabled=_bool(env, True, "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED"),
        custom_headers=_headers(env, "PREFECT_CLIENT_CUSTOM_HEADERS"),
        cloud_api_url=_first(env, "PREFECT_CLOUD_API_URL") or DEFAULT_CLOUD_API_URL,
        unit_test_mode=_bool(
            env, False, "PREFECT_TESTING_UNIT_TEST_MODE", "PREFECT_UNIT_TEST_MODE"
        ),
        ephemeral_enabled=(
            None
            if ephemeral_raw is None
            else _bool(
                env,
                False,
                "PREFECT_SERVER_EPHEMERAL_ENABLED",
                "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE",
            )
        ),
        ephemeral_startup_timeout=_number(
            env, 0.0, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
        )
        or None,
        attribution_headers={
            header: value
            for header, variable in _ATTRIBUTION
            if (value := _first(env, variable)) is not None
        },
    )
