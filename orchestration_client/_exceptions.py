"""Every error the client raises on purpose, in one tree::

    PrefectException              same name as prefect.exceptions.PrefectException
     └── OrchestrationClientError
          ├── PrefectHTTPStatusError   (also requests.HTTPError)     non-2xx reply, after retries
          │    ├── ObjectNotFound                                     404: no such object or route
          │    └── ObjectAlreadyExists                                409 (built by user code)
          ├── APIConnectionError       (also requests.ConnectionError) API could not be reached
          ├── APITimeoutError          (also requests.Timeout)        no reply within the timeout
          ├── ResponseDecodeError      (also ValueError)              a 2xx reply of wrong shape
          ├── RequestValidationError   (also TypeError, ValueError)   bad arguments; none sent
          └── ClientClosedError        (also RuntimeError)            used after close

Each HTTP-level error keeps the ``requests`` base class users already catch. Messages name
the method and URL with any ``user:password@`` removed, never a credential. Every error
pickles with its message and attributes, so it can cross a process pool.
"""

import json
from typing import Any, Dict, Iterator, Optional, Tuple, Type, TypeVar, Union
from urllib.parse import urlsplit, urlunsplit

import requests

from ._retry_after import MAX_WAIT, asked_wait

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "ClientClosedError",
    "ObjectAlreadyExists",
    "ObjectNotFound",
    "OrchestrationClientError",
    "PrefectException",
    "PrefectHTTPStatusError",
    "RequestValidationError",
    "ResponseDecodeError",
    "causes",
    "redact_url",
]

_MAX_BODY_IN_MESSAGE = 1000


def causes(exc: BaseException, *, through_cause: bool = False) -> Iterator[BaseException]:
    """``exc``, then what it wraps, innermost last: urllib3's ``reason``, an exception given
    as the first argument (as requests wraps urllib3's), and with ``through_cause`` also
    ``__cause__``. Bounded, so a cycle cannot loop forever."""
    cause: Optional[BaseException] = exc
    for _ in range(20):
        if cause is None:
            return
        yield cause
        reason = getattr(cause, "reason", None)
        args = getattr(cause, "args", ())
        if isinstance(reason, BaseException):
            cause = reason
        elif args and isinstance(args[0], BaseException) and args[0] is not cause:
            cause = args[0]
        else:
            cause = cause.__cause__ if through_cause else None


def redact_url(url: str) -> str:
    """``url`` without its ``user:password@`` part, safe to show or log. Anything before
    the last ``@`` is hidden even when the URL is malformed (no scheme, or a raw ``/`` or
    ``#`` in the password), since it may be part of a password."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    if "@" not in url:
        return url
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    return f"{scheme}{separator}***@{rest.rsplit('@', 1)[1]}"


_E = TypeVar("_E", bound=BaseException)


def _rebuild(cls: Type[_E], args: Tuple[Any, ...], state: Dict[str, Any]) -> _E:
    """Unpickle an error without calling its ``__init__`` (whose signature varies)."""
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class PrefectException(Exception):
    """Named like ``prefect.exceptions.PrefectException``, so that ``except PrefectException``
    in code written for Prefect still catches this package's errors after the import swap."""


class OrchestrationClientError(PrefectException):
    """Root of this package's errors."""

    def __reduce__(self) -> Tuple[Any, ...]:
        # The default pickling calls ``cls(*self.args)``, which our keyword-only or
        # response-taking constructors refuse; restore args and attributes directly.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


_TOO_DEEP = " (a JSON body nested too deeply to parse, shown as text)"


def _body_detail(response: requests.Response) -> Tuple[Any, str]:
    """The parsed JSON body of an error reply, or its text when it is not JSON; plus a note
    for the message when the body was JSON nested too deeply to parse (a hostile or broken
    server must not turn an HTTP error into a ``RecursionError``)."""
    try:
        detail = json.loads(response.content) if response.content else None
    except ValueError:
        return response.text, ""
    except RecursionError:
        return response.text, _TOO_DEEP
    # Parseable but still too deep to pickle or print: keep it as text.
    return (response.text, _TOO_DEEP) if _deeper_than(detail, _MAX_DETAIL_DEPTH) else (detail, "")


_MAX_DETAIL_DEPTH = 64


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists/dicts more than ``limit`` levels (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def _shown_detail(detail: Any) -> str:
    """``detail`` as one line for a message, cut to a readable length."""
    if isinstance(detail, str):
        shown = detail
    else:
        try:
            shown = json.dumps(detail)
        except (ValueError, TypeError, RecursionError):
            shown = repr(detail)
    if len(shown) > _MAX_BODY_IN_MESSAGE:
        shown = shown[:_MAX_BODY_IN_MESSAGE] + "..."
    return shown


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
    ``retry_after`` (seconds the reply's ``Retry-After`` asked for, or None), plus
    ``request``/``response`` as on any ``requests.HTTPError``. When the server asked for a
    longer wait than the client ever makes (``MAX_WAIT``), the message says so.
    """

    def __init__(self, response: requests.Response, *, retries: int = 0) -> None:
        message = self._read(response, retries)
        super().__init__(message, response=response, request=response.request)

    def _read(self, response: requests.Response, retries: int) -> str:
        """Set the attributes from ``response``; return the message."""
        request = response.request
        self.status_code: int = response.status_code
        self.method: str = (request.method or "") if request is not None else ""
        self.url: str = redact_url(response.url or (request.url or "" if request else ""))
        self.detail: Any
        self.detail, note = _body_detail(response)
        self.retries = retries
        self.retry_after: Optional[float] = asked_wait(response.headers)
        if self.retry_after is not None and self.retry_after > MAX_WAIT:
            asked = str(response.headers.get("Retry-After", ""))[:80]
            note += (
                f" (the server asked to retry after {self.retry_after:.0f} s, Retry-After: "
                f"{asked!r}; the client waits at most {MAX_WAIT:g} s, so it did not retry)"
            )
        return self._message(response.reason) + note

    def _message(self, reason: Optional[str]) -> str:
        status = f"{self.status_code} {reason}" if reason else str(self.status_code)
        message = f"{_status_kind(self.status_code)} '{status}' for {self.method} {self.url}"
        if self.retries:
            message += f" (gave up after {self.retries} retries)"
        if self.detail not in (None, "", {}, []):
            message += f" - Response: {_shown_detail(self.detail)}"
        return message


class _WrapsHTTPError(PrefectHTTPStatusError):
    """An error for one status that user code may also build from another error, as with
    Prefect's ``ObjectNotFound(http_exc=..., help_message=...)``.

    The client raises it with the reply (``cls(response, retries=n)``); user code passes the
    HTTP error it caught, whose response (if a ``requests`` one) fills the attributes.
    """

    _STATUS = 0

    def __init__(
        self,
        http_exc: Union[requests.Response, BaseException],
        help_message: Optional[str] = None,
        *args: Any,
        retries: int = 0,
    ) -> None:
        self.help_message = help_message
        self._http_exc: Optional[BaseException] = None
        if isinstance(http_exc, requests.Response):
            response: Optional[requests.Response] = http_exc
        else:
            self._http_exc = http_exc
            found = getattr(http_exc, "response", None)
            response = found if isinstance(found, requests.Response) else None
            retries = getattr(http_exc, "retries", retries)
        if response is not None:
            message = self._read(response, retries)
        else:
            self.status_code, self.method, self.url = self._STATUS, "", ""
            self.detail, self.retries, self.retry_after = None, retries, None
            message = f"{self._STATUS}: {type(http_exc).__name__}: {http_exc}"
        requests.HTTPError.__init__(
            self,
            help_message or message,
            *args,
            response=response,
            request=response.request if response is not None else None,
        )

    @property
    def http_exc(self) -> BaseException:
        """The error this one wraps: the one user code passed in, else itself (it carries
        ``response`` as Prefect's wrapped httpx error does)."""
        return self if self._http_exc is None else self._http_exc


class ObjectNotFound(_WrapsHTTPError):
    """404: the object does not exist, or the URL names no API route.

    Also constructible as in Prefect: ``ObjectNotFound(http_exc=error, help_message=...)``;
    ``str()`` is then the help message when one is given.
    """

    _STATUS = 404

    def _message(self, reason: Optional[str]) -> str:
        message = super()._message(reason)
        if self.detail == {"detail": "Not Found"}:
            message += (
                " (no such route: check that the API URL ends in /api and that the id is a UUID)"
            )
        return message


class ObjectAlreadyExists(_WrapsHTTPError):
    """409: the object exists already. The client's task-run calls raise a plain
    ``PrefectHTTPStatusError`` for a 409 (as Prefect's do); this class exists for code written
    against Prefect, constructible as there: ``ObjectAlreadyExists(http_exc=error)``."""

    _STATUS = 409


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
