"""Every error the client raises on purpose, in one tree::

    OrchestrationClientError
     ├── PrefectHTTPStatusError   (also requests.HTTPError)   non-2xx reply, after retries
     │    └── ObjectNotFound                                   404: no such object or route
     ├── APIConnectionError       (also requests.ConnectionError) the API could not be reached
     ├── APITimeoutError          (also requests.Timeout)      no reply within the read timeout
     ├── ResponseDecodeError      (also ValueError)            a 2xx reply of the wrong shape
     ├── RequestValidationError   (also TypeError, ValueError) bad arguments; nothing was sent
     └── ClientClosedError        (also RuntimeError)          the client was used after close

Each HTTP-level error keeps the ``requests`` base class users already catch. Messages name
the method and URL with any ``user:password@`` removed, never a credential.
"""

import json
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit

import requests

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "ClientClosedError",
    "ObjectNotFound",
    "OrchestrationClientError",
    "PrefectHTTPStatusError",
    "RequestValidationError",
    "ResponseDecodeError",
    "redact_url",
]

_MAX_BODY_IN_MESSAGE = 1000


def redact_url(url: str) -> str:
    """``url`` without its ``user:password@`` part, safe to show or log."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class OrchestrationClientError(Exception):
    """Root of this package's errors."""


def _body_detail(response: requests.Response) -> Any:
    """The parsed JSON body of an error reply, or its text when it is not JSON."""
    try:
        return json.loads(response.content) if response.content else None
    except ValueError:
        return response.text


def _status_kind(status: int) -> str:
    if status >= 500:
        return "Server error"
    if status >= 400:
        return "Client error"
    if status >= 300:
        return "Redirect response"
    return "Informational response"


class PrefectHTTPStatusError(OrchestrationClientError, requests.HTTPError):
    """The server answered with a non-2xx status (after any retries).

    Attributes: ``status_code``, ``method``, ``url`` (credentials removed), ``detail`` (the
    server's parsed JSON error body, or its text), ``retries`` (retries spent on this call),
    plus ``request``/``response`` as on any ``requests.HTTPError``.
    """

    def __init__(self, response: requests.Response, *, retries: int = 0) -> None:
        request = response.request
        self.status_code: int = response.status_code
        self.method: str = (request.method or "") if request is not None else ""
        self.url: str = redact_url(response.url or (request.url or "" if request else ""))
        self.detail: Any = _body_detail(response)
        self.retries = retries
        super().__init__(self._message(response.reason), response=response, request=request)

    def _message(self, reason: Optional[str]) -> str:
        status = f"{self.status_code} {reason}" if reason else str(self.status_code)
        message = f"{_status_kind(self.status_code)} '{status}' for {self.method} {self.url}"
        if self.retries:
            message += f" (gave up after {self.retries} retries)"
        if self.detail not in (None, "", {}, []):
            shown = self.detail if isinstance(self.detail, str) else json.dumps(self.detail)
            if len(shown) > _MAX_BODY_IN_MESSAGE:
                shown = shown[:_MAX_BODY_IN_MESSAGE] + "..."
            message += f" - Response: {shown}"
        return message


class ObjectNotFound(PrefectHTTPStatusError):
    """404: the object does not exist, or the URL names no API route.

    ``http_exc`` and ``help_message`` exist for code written against Prefect's class.
    """

    help_message: Optional[str] = None

    @property
    def http_exc(self) -> "PrefectHTTPStatusError":
        return self

    def _message(self, reason: Optional[str]) -> str:
        message = super()._message(reason)
        if self.detail == {"detail": "Not Found"}:
            message += (
                " (no such route: check that the API URL ends in /api and that the id is a UUID)"
            )
        return message


class APIConnectionError(OrchestrationClientError, requests.ConnectionError):
    """The API could not be reached, or the connection broke before a full reply."""


class APITimeoutError(OrchestrationClientError, requests.Timeout):
    """The server sent no reply within the read timeout."""


class ResponseDecodeError(OrchestrationClientError, ValueError):
    """A successful reply whose body does not match the expected schema.

    ``endpoint`` is ``"METHOD /path"``; ``response`` is the raw ``requests.Response``.
    """

    def __init__(self, message: str, *, endpoint: str, response: requests.Response) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.response = response


class RequestValidationError(OrchestrationClientError, TypeError, ValueError):
    """An argument failed validation before anything was sent.

    It is both a ``TypeError`` and a ``ValueError``, so either ``except`` clause works.
    """


class ClientClosedError(OrchestrationClientError, RuntimeError):
    """The client was closed and cannot send requests or be entered again."""
