"""Header names and values, checked and encoded once, when the client is built.

Encoding: a value that is not plain ASCII is sent as its UTF-8 bytes. These are the bytes
Prefect 3.9.1's client (httpx) puts on the wire for the attribution headers, such as
``X-Prefect-Flow-Name`` from ``PREFECT__FLOW_NAME=データ処理``; requests alone would send
Latin-1, and fail on anything outside it. The same rule holds for the API key,
``PREFECT_CLIENT_CUSTOM_HEADERS`` and ``httpx_settings["headers"]`` (where Prefect's client
fails instead). ASCII values are sent unchanged.

Checks: spaces and tabs around a value are dropped (a server ignores them anyway). A value
with a line break or another control character cannot be sent, and is refused with an error
that names the setting it came from but never the value, which may be a secret.
"""

import base64
import re
from typing import Any, Dict, Mapping, Union

__all__ = ["HeaderValue", "attribution", "basic", "bearer", "checked", "name", "secret", "value"]

#: What goes on ``requests``' headers: ``str`` for ASCII, UTF-8 ``bytes`` otherwise.
HeaderValue = Union[str, bytes]

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9110 token characters.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _refuse(setting: str) -> ValueError:
    return ValueError(
        f"{setting} contains a line break or another control character, which an HTTP "
        "header cannot carry (the value is not shown: it may be a secret)"
    )


def secret(text: str, setting: str) -> str:
    """``text`` (an API key, auth string or other value) with surrounding blanks dropped,
    or a ``ValueError`` naming ``setting`` if it holds a control character."""
    text = text.strip(" \t")
    if _CONTROL.search(text):
        raise _refuse(setting)
    return text


def value(text: Any, setting: str) -> HeaderValue:
    """A header value ready for requests: checked, and UTF-8 bytes unless plain ASCII."""
    if isinstance(text, bytes):
        raw: bytes = text.strip(b" \t")
        if _CONTROL_BYTES.search(raw):
            raise _refuse(setting)
        return raw
    if not isinstance(text, str):
        raise TypeError(f"{setting} must be a string, got {type(text).__name__}")
    checked_text = secret(text, setting)
    return checked_text if checked_text.isascii() else checked_text.encode("utf-8")


def bearer(api_key: str) -> HeaderValue:
    """The ``Authorization`` value for an API key."""
    setting = "api_key (PREFECT_API_KEY)"
    return value(f"Bearer {secret(api_key, setting)}", setting)


def basic(auth_string: str) -> str:
    """The ``Authorization`` value for a ``user:password`` auth string (UTF-8, base64)."""
    checked_text = secret(auth_string, "auth_string (PREFECT_API_AUTH_STRING)")
    return "Basic " + base64.b64encode(checked_text.encode("utf-8")).decode("ascii")


def name(header: Any, setting: str) -> str:
    """A header name, which must be an HTTP token (names are shown: they are not secret)."""
    if isinstance(header, bytes):
        header = header.decode("ascii", "replace")
    if not isinstance(header, str) or not _TOKEN.fullmatch(header):
        raise ValueError(f"{setting} has an invalid header name {header!r}")
    return header


def checked(headers: Any, setting: str) -> Dict[str, HeaderValue]:
    """Every name and value of ``headers`` (a mapping or ``(name, value)`` pairs, as httpx
    takes) checked; errors name ``setting[name]``."""
    return {
        name(header, setting): value(text, f"{setting}[{header!r}]")
        for header, text in dict(headers).items()
    }


def attribution(headers: Mapping[str, str]) -> Dict[str, HeaderValue]:
    """The ``X-Prefect-*`` attribution headers; an error names the variable the value came
    from (``X-Prefect-Flow-Name`` from ``PREFECT__FLOW_NAME``, and so on)."""
    return {
        header: value(text, "PREFECT__" + header[len("X-Prefect-") :].replace("-", "_").upper())
        for header, text in headers.items()
    }
