"""httpx-style client options (Prefect's ``httpx_settings``) translated for requests."""

import ssl
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from ._load import MAX_TIMEOUT, Settings

__all__ = ["SUPPORTED", "Timeout", "proxies", "timeout", "tls_verify"]

#: (connect, read) seconds, or None for no limit, as requests takes it.
Timeout = Optional[Tuple[Optional[float], Optional[float]]]

SUPPORTED = frozenset(
    {
        "headers",
        "timeout",
        "verify",
        "cert",
        "params",
        "cookies",
        "follow_redirects",
        "proxy",
        "proxies",
        "base_url",
    }
)


def timeout(value: Any) -> Timeout:
    """httpx-style timeout (number, None, pair, or an object with connect/read) for requests.
    Each part is None (no limit) or seconds in (0, a year]; anything else is refused here,
    not by the socket on the first call."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = _seconds(value, "httpx_settings['timeout']")
        return (seconds, seconds)
    if isinstance(value, tuple) and len(value) == 2:
        return (
            _seconds(value[0], "httpx_settings['timeout'] (connect)"),
            _seconds(value[1], "httpx_settings['timeout'] (read)"),
        )
    if hasattr(value, "connect") and hasattr(value, "read"):
        return (
            _seconds(value.connect, "httpx_settings['timeout'].connect"),
            _seconds(value.read, "httpx_settings['timeout'].read"),
        )
    raise TypeError(
        "httpx_settings['timeout'] must be a number, None, a (connect, read) pair or an "
        f"object with connect/read, got {type(value).__name__}"
    )


def _seconds(value: Any, name: str) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, got {type(value).__name__}")
    if not 0 < value <= MAX_TIMEOUT:
        raise ValueError(f"{name} must be > 0 and at most {MAX_TIMEOUT:g} seconds, got {value!r}")
    return float(value)


def proxies(value: Any) -> Dict[str, str]:
    """httpx's proxy/proxies forms (one URL, or {"http://": url, "all://": url}) for requests."""
    if isinstance(value, str):
        return {"http": value, "https": value}
    if isinstance(value, Mapping):
        mapped: Dict[str, str] = {}
        for key, url in value.items():
            scheme = str(key).split(":", 1)[0]
            for target in ("http", "https") if scheme == "all" else (scheme,):
                mapped[target] = str(url)
        return mapped
    raise TypeError(f"httpx_settings proxy must be a URL or a mapping, got {type(value).__name__}")


def tls_verify(options: Mapping[str, Any], settings: Settings) -> Union[bool, str]:
    """What to verify TLS against: the caller's choice, else the PREFECT_* settings."""
    if "verify" in options:
        verify = options["verify"]
        if isinstance(verify, ssl.SSLContext):
            raise TypeError(
                "httpx_settings['verify'] as an ssl.SSLContext is not supported; "
                "pass a CA bundle path or a bool"
            )
        if not isinstance(verify, (bool, str)):
            raise TypeError(f"httpx_settings['verify'] must be a bool or a path, got {verify!r}")
        return verify
    if settings.tls_insecure_skip_verify:
        return False
    return settings.ssl_cert_file or True
