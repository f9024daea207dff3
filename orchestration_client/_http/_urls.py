"""The API URL, checked, and split from any ``user:password@`` part before anything uses it,
so that no message, ``repr`` or log line can show the password."""

from typing import Any, Optional, Tuple
from urllib.parse import unquote, urlsplit, urlunsplit

import requests

from .._exceptions import redact_url
from .._settings import _headers

__all__ = ["api_base_url"]


def api_base_url(
    url: Any, auth_string: Optional[str], api_key: Optional[str]
) -> Tuple[str, Optional[str]]:
    """The normalised base URL without credentials, and the auth string to use.

    ``user:password@`` in the URL becomes the auth string unless the caller gave
    credentials (as httpx and requests do). A password must be percent-encoded: with a raw
    ``/``, ``?`` or ``#`` in it the URL cannot be split safely, and it is refused without
    being shown.
    """
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        shown = redact_url(url) if isinstance(url, str) else type(url).__name__
        raise ValueError(f"the API URL must start with http:// or https://, got {shown!r}")
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        if "@" in url:
            raise ValueError(
                "the API URL has an '@' after a '/', '?' or '#': if it holds a user:password, "
                "percent-encode those characters in it (the URL is not shown: it may hold "
                "a password)"
            )
        bare, userinfo = url, None
    else:
        userinfo, host = parts.netloc.rsplit("@", 1)
        bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    if userinfo is not None and not (auth_string or api_key):
        auth_string = _headers.secret(unquote(userinfo), "the user:password in the API URL")
    normalised = requests.Request("GET", bare).prepare().url or bare
    return normalised.rstrip("/"), auth_string
