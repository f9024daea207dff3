"""Redirects stay on the API's origin.

A redirect to another scheme, host or port is refused: following it would carry
``PREFECT_CLIENT_CUSTOM_HEADERS`` values (often a proxy or gateway credential), the CSRF
token and, on 307/308, the request body to a server the user never configured. Redirects
within the origin are followed as before.
"""

from typing import Any, Optional, Tuple
from urllib.parse import urljoin, urlsplit

import requests

from .._exceptions import PrefectHTTPStatusError, redact_url

__all__ = ["OriginSession", "RedirectRefusedError", "origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> Optional[Tuple[str, str, int]]:
    """``(scheme, host, port)`` of ``url`` with the default port filled in; None if the
    URL has no readable host or port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    host = parts.hostname
    if not host or port is None:
        return None
    return scheme, host, port


def _shown(url: str) -> str:
    found = origin(url)
    if found is None:
        return repr(redact_url(url))
    scheme, host, port = found
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}"


class RedirectRefusedError(PrefectHTTPStatusError):
    """A redirect to another origin was not followed; it is the 3xx reply's status error."""

    def __init__(self, response: requests.Response, *, retries: int = 0) -> None:
        self.target = urljoin(response.url or "", response.headers.get("Location", ""))
        super().__init__(response, retries=retries)

    def _message(self, reason: Optional[str]) -> str:
        return (
            f"{super()._message(reason)} - not followed: it leads from {_shown(self.url)} to "
            f"another origin, {_shown(self.target)}, which must not receive this request's "
            "custom headers, CSRF token or body. Point PREFECT_API_URL at the final address."
        )


class OriginSession(requests.Session):
    """``requests.Session`` that refuses redirects to another origin (``send`` itself is
    untouched, so instrumentation that patches it keeps working)."""

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: Any) -> None:
        here = origin(response.url or "")
        if here is None or origin(prepared_request.url or "") != here:
            response.close()
            raise RedirectRefusedError(response)
        super().rebuild_auth(prepared_request, response)  # type: ignore[no-untyped-call]
