"""HTTP plumbing: one ``requests.Session`` set up once, and one ``request()`` that sends
bytes and returns a checked response.

The session carries the base URL, headers, auth, TLS, pool size, timeout, the retry
adapter and the CSRF token. It knows nothing about task runs.

Thread safety: after construction the session is only read, the connection pool is
thread-safe, and the CSRF token and the "server has answered" flag are guarded, so one
``Transport`` may serve many threads at once.

Processes: a forked child never uses a connection it inherited. Right after ``os.fork``
(and so in ``multiprocessing`` and prefork servers) every live transport drops its pools
and CSRF token in the child without touching them; a pid check in ``send`` covers forks
that bypass Python's fork hooks. The child opens fresh connections on first use.

Each attempt's reply is read whole inside urllib3 (``_connection``): the read timeout
bounds the whole reply, its decoded size is capped, interim replies are skipped, and a
reset in the middle of a body is retried like any other broken connection.
"""

import functools
import logging
import os
import threading
import weakref
from typing import Any, Callable, Dict, Mapping, Optional, Union
from urllib.parse import urlencode, urlsplit

import requests
import requests.adapters
import requests.cookies
import requests.structures
import urllib3.exceptions
import urllib3.util

from .._exceptions import (
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    ObjectNotFound,
    OrchestrationClientError,
    PrefectHTTPStatusError,
    ResponseDecodeError,
    causes,
    redact_url,
)
from .._settings import _headers, _httpx
from .._settings._load import Settings
from .._version import SERVER_API_VERSION, USER_AGENT
from ._connection import (
    MAX_CONNECTIONS_VARIABLE,
    BoundedAdapter,
    ConnectionCheck,
    ConnectionVetoed,
    NoConnectionForRetry,
    ReplyRejected,
    call_in_child_after_fork,
    max_connections,
    max_reply_bytes,
    may_have_reached_server,
)
from ._csrf import CsrfToken
from ._no_proxy import environment_proxies
from ._observed_retry import observed
from ._redirects import OriginSession
from ._reply_errors import ReplyTooLargeError, bodiless_response
from ._retry import PrefectRetry, quiet_urllib3_retries
from ._urls import api_base_url

__all__ = ["Transport"]

logger = logging.getLogger("orchestration_client")

_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CSRF_HEADERS = ("prefect-csrf-token", "prefect-csrf-client")
# Headers that neither PREFECT_CLIENT_CUSTOM_HEADERS nor httpx_settings may replace.
_PROTECTED = frozenset({"user-agent", "authorization", *_CSRF_HEADERS})
# The encodings _connection decodes under the size cap.
_ACCEPT_ENCODING = "gzip, deflate"
_CA_VARIABLES = (
    "PREFECT_API_SSL_CERT_FILE",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)


class Transport:
    """Sends requests to one Prefect API with Prefect's headers, auth, retries and CSRF."""

    def __init__(
        self,
        api: str,
        *,
        settings: Settings,
        api_key: Optional[str] = None,
        auth_string: Optional[str] = None,
        api_version: Optional[str] = None,
        httpx_settings: Optional[Mapping[str, Any]] = None,
        check_new_connection: Optional[ConnectionCheck] = None,
    ) -> None:
        options = dict(httpx_settings or {})
        unsupported = sorted(set(options) - _httpx.SUPPORTED)
        if unsupported:
            raise TypeError(
                f"unsupported httpx_settings key(s): {', '.join(map(repr, unsupported))}; "
                f"supported: {', '.join(sorted(_httpx.SUPPORTED))}"
            )
        self.base_url, auth_string = api_base_url(
            options.get("base_url", api), auth_string, api_key
        )
        self.is_cloud = self.base_url.startswith(settings.cloud_api_url.rstrip("/"))
        self.timeout: _httpx.Timeout = (
            _httpx.timeout(options["timeout"])
            if "timeout" in options
            else (settings.request_timeout, settings.request_timeout)
        )
        self.follow_redirects = bool(options.get("follow_redirects", not settings.unit_test_mode))

        def retry_policy(first_contact: bool, idempotent: bool) -> PrefectRetry:
            policy = PrefectRetry.for_client(
                max_retries=settings.max_retries,
                jitter_factor=settings.retry_jitter_factor,
                extra_codes=settings.retry_extra_codes,
                first_contact=first_contact,
                retry_500_seconds=settings.retry_500_seconds,
            )
            if idempotent:
                return policy
            # Only failures to connect: the request surely did not reach the server.
            return policy.new(read=False, status_forcelist=frozenset())

        # Until the server first answers, connection failures fail fast; then the adapter
        # switches to the full policy (see send()). Index: [idempotent].
        self._retries = (retry_policy(True, False), retry_policy(True, True))
        self._retries_after_contact = (retry_policy(False, False), retry_policy(False, True))
        self._adapter = BoundedAdapter(
            max_reply_bytes=max_reply_bytes(os.environ),
            pool_maxsize=max_connections(os.environ),
            # A caller beyond the cap waits for a free connection up to the connect timeout.
            pool_wait=None if self.timeout is None else self.timeout[0],
            max_retries=self._retries[True],
            check_new_connection=check_new_connection,
        )
        quiet_urllib3_retries()
        self._max_retries = settings.max_retries
        self._params: Dict[str, str] = {
            str(key): str(value) for key, value in dict(options.get("params") or {}).items()
        }
        self._contacted = False
        self._closed = False
        self.session = self._build_session(options, settings, api_key, auth_string, api_version)
        self._headers: requests.structures.CaseInsensitiveDict[Union[str, bytes]] = (
            requests.structures.CaseInsensitiveDict(self.session.headers)
        )
        self.csrf = self._new_csrf(settings.csrf_support_enabled and not self.is_cloud)
        self._pid = os.getpid()
        _LIVE.add(self)

    def _build_session(
        self,
        options: Dict[str, Any],
        settings: Settings,
        api_key: Optional[str],
        auth_string: Optional[str],
        api_version: Optional[str],
    ) -> requests.Session:
        session = OriginSession()
        # Environment lookups (proxies, CA bundle, netrc) are done once here, not per call.
        session.trust_env = False
        session.proxies = environment_proxies(self.base_url)  # NO_PROXY as httpx and requests
        source = "the HTTP_PROXY/HTTPS_PROXY/ALL_PROXY environment variables"
        if "proxy" in options or "proxies" in options:
            session.proxies = _httpx.proxies(options.get("proxy", options.get("proxies")))
            source = "httpx_settings['proxy']"
        _check_proxies(session.proxies, source)
        session.verify = _httpx.tls_verify(options, settings)
        if "cert" in options:
            session.cert = options["cert"]
        if self.base_url.startswith("https://"):
            _check_tls_files(session.verify, session.cert, "verify" in options)
        session.cookies = _CookieJar()
        if "cookies" in options:
            session.cookies.update(options["cookies"])
        session.mount("http://", self._adapter)
        session.mount("https://", self._adapter)

        headers = session.headers
        headers["Accept-Encoding"] = _ACCEPT_ENCODING
        # Values are checked and encoded by _headers (UTF-8 unless ASCII, as Prefect sends).
        for name, value in _headers.checked(
            options.get("headers") or {}, "httpx_settings['headers']"
        ).items():
            if name.lower() == "user-agent" or name.lower() in _CSRF_HEADERS:
                continue
            headers[name] = value
        headers.setdefault(
            "X-PREFECT-API-VERSION",
            _headers.value(api_version or SERVER_API_VERSION, "api_version"),
        )
        if auth_string:
            headers["Authorization"] = _headers.basic(auth_string)
        elif api_key:
            headers["Authorization"] = _headers.bearer(api_key)
        headers.update(_headers.attribution(settings.attribution_headers))
        for name, value in _headers.checked(
            settings.custom_headers, "PREFECT_CLIENT_CUSTOM_HEADERS"
        ).items():
            if name.lower() in _PROTECTED:
                logger.warning("PREFECT_CLIENT_CUSTOM_HEADERS may not set %s; ignored", name)
                continue
            headers[name] = value
        headers["User-Agent"] = USER_AGENT
        return session

    # ---- sending -------------------------------------------------------------------------

    def send(
        self,
        method: str,
        path: str,
        *,
        content: Optional[bytes] = None,
        params: Optional[Mapping[str, str]] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        idempotent: bool = True,
        retries: Optional[PrefectRetry] = None,
    ) -> requests.Response:
        """One request with retries; returns whatever status came back last, its body read.

        ``idempotent=False`` is for a request that must not be applied twice: it is then
        re-sent only when it surely did not reach the server (the connection could not be
        made), never after a broken reply or a retryable status; the caller decides.
        ``retries`` replaces the client's policy for this request, used as given (a caller
        that spends one budget over several requests, or watches a request's retries).
        """
        if self._closed:
            raise ClientClosedError("The client has been closed and cannot send requests.")
        if self._pid != os.getpid():
            self._forget_parent_connections()
        prepared = self._prepare(method, path, content, params, extra_headers)
        session = self.session
        self._adapter.use_retries(
            retries
            if retries is not None
            else (self._retries_after_contact if self._contacted else self._retries)[idempotent]
        )
        try:
            response = session.send(
                prepared,
                timeout=self.timeout,
                allow_redirects=self.follow_redirects,
                verify=session.verify,
                cert=session.cert,
                proxies=session.proxies,
                stream=True,
            )
            # The body is already in memory (read whole by _connection); take it in one
            # read instead of requests' 10 KiB chunks.
            response._content = response.raw.read(decode_content=True)
        except OrchestrationClientError:
            raise
        except Exception as exc:
            error = self._error(exc, prepared)
            if error is None:
                raise
            raise error from exc
        finally:
            # However the call ended (an interrupt included), it keeps no connection slot:
            # one taken and not given back by urllib3 (the reply lost to an exception
            # before it was read) is given back here. Holding none, nothing changes.
            self._adapter.give_back_slots()
        if not self._contacted:
            self._contacted = True
        return response

    def _error(self, exc: Exception, prepared: requests.PreparedRequest) -> Optional[Exception]:
        """The package error for a failure while sending ``prepared`` or reading its reply
        (None: not one of ours to translate, such as a bug in a patched-in tool)."""
        method, url = prepared.method or "", redact_url(prepared.url or "")
        if isinstance(exc, ReplyRejected):
            endpoint = f"{method} {urlsplit(prepared.url or '').path}"
            response = bodiless_response(prepared, exc.status, exc.reason, exc.headers)
            message = f"{endpoint} answered {exc.status}, but {exc}"
            if exc.limit:
                return ReplyTooLargeError(
                    message, endpoint=endpoint, response=response, limit=exc.limit
                )
            return ResponseDecodeError(message, endpoint=endpoint, response=response)
        if isinstance(exc, ConnectionVetoed):
            return APIConnectionError(f"Could not reach the Prefect API for {method} {url}: {exc}")
        if isinstance(exc, (urllib3.exceptions.EmptyPoolError, NoConnectionForRetry)):
            wait, cap = self._adapter.pool_wait, self._adapter.max_connections
            in_use = f"all {cap} connections this client may open ({MAX_CONNECTIONS_VARIABLE})"
            if not isinstance(exc, NoConnectionForRetry):
                return APITimeoutError(
                    f"{method} {url}: not sent: no free connection within {wait:g} s; "
                    f"{in_use} stayed in use"
                )
            return APITimeoutError(
                f"{method} {url}: retry {len(exc.history)} found no free connection within "
                f"{wait:g} s ({in_use} stayed in use), and an earlier attempt "
                f"{_reached(exc.history)}: the request may have been applied"
            )
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return APITimeoutError(
                f"{method} {url}: no reply within {self._read_timeout()} s "
                "(the whole reply must arrive within the read timeout)"
            )
        if isinstance(
            exc, (requests.exceptions.ContentDecodingError, urllib3.exceptions.DecodeError)
        ):
            endpoint = f"{method} {urlsplit(prepared.url or '').path}"
            return ResponseDecodeError(
                f"{endpoint}: the reply body could not be decoded: {_reason(exc)}",
                endpoint=endpoint,
                response=bodiless_response(prepared, 0, "", {}),
            )
        if isinstance(exc, requests.TooManyRedirects):
            return APIConnectionError(
                f"Could not reach the Prefect API for {method} {url}: "
                f"too many redirects (more than {self.session.max_redirects})"
            )
        if isinstance(exc, (requests.RequestException, OSError)):
            return APIConnectionError(
                f"Could not reach the Prefect API for {method} {url}: {_reason(exc)}"
            )
        if isinstance(exc, (OverflowError, RecursionError)):
            return APIConnectionError(
                f"Could not complete {method} {url}: {type(exc).__name__}: {exc}"
            )
        return None

    @property
    def retry_policy(self) -> PrefectRetry:
        """The retry policy an idempotent call would use now (before or after the server
        first answered); callers that retry by hand, like set_task_run_state, spend it."""
        return (self._retries_after_contact if self._contacted else self._retries)[True]

    def _forget_parent_connections(self) -> None:
        """In a forked child: never touch the parent's sockets, locks or CSRF token."""
        self._pid = os.getpid()
        self._adapter.forget_connections()
        self.csrf = self._new_csrf(self.csrf.enabled)
        # The cookie jar's lock may have been held by a parent thread at the fork.
        self.session.cookies._cookies_lock = threading.RLock()  # type: ignore[attr-defined]

    def _new_csrf(self, enabled: bool) -> CsrfToken:
        """The CSRF token holder; a forked child gets its own (own client id, own lock)."""

        def fetch(client: str, progress: Callable[[], None]) -> requests.Response:
            # The client's own policy, reporting each retry: the callers waiting for this
            # fetch go on waiting while it is answered and retried.
            policy = observed(self.retry_policy, lambda retry: progress())
            return self.send("GET", "/csrf-token", params={"client": client}, retries=policy)

        return CsrfToken(enabled, fetch=fetch, check=self.raise_for_status, timeout=self.timeout)

    def _prepare(
        self,
        method: str,
        path: str,
        content: Optional[bytes],
        params: Optional[Mapping[str, str]],
        extra_headers: Optional[Mapping[str, str]],
    ) -> requests.PreparedRequest:
        """Build the request directly: ``Session.request`` would re-merge the session's
        settings and environment on every call, which costs more CPU than the rest of
        the call. The result is what ``Session.prepare_request`` would have made."""
        prepared = requests.PreparedRequest()
        prepared.method = method
        url = self.base_url + path
        query = {**self._params, **params} if params else self._params
        prepared.url = f"{url}?{urlencode(query)}" if query else url
        headers = self._headers.copy()
        if content is not None:
            headers["Content-Type"] = "application/json"
            headers["Content-Length"] = str(len(content))
        elif method in _MUTATING:
            headers["Content-Length"] = "0"
        if extra_headers:
            headers.update(extra_headers)
        prepared.headers = headers  # type: ignore[assignment]
        prepared.body = content
        prepared.hooks = {"response": []}
        if self.session.cookies:
            prepared.prepare_cookies(self.session.cookies)
        else:  # what prepare_cookies would store; redirects read it
            prepared._cookies = self.session.cookies  # type: ignore[attr-defined]
        return prepared

    def request(
        self,
        method: str,
        path: str,
        *,
        content: Optional[bytes] = None,
        params: Optional[Mapping[str, str]] = None,
        idempotent: bool = True,
        retries: Optional[PrefectRetry] = None,
    ) -> requests.Response:
        """Send, with CSRF headers on mutating requests, and raise for any non-2xx reply.
        ``idempotent=False`` and ``retries``: see :meth:`send`. When no CSRF token can be
        had, the request is not sent, and the token's error is raised, marked so
        (``_csrf.token_failure``)."""
        if self._pid != os.getpid():  # before the CSRF state, which is the parent's too
            self._forget_parent_connections()
        csrf = self.csrf.enabled and method in _MUTATING
        extra = self.csrf.headers(request=f"{method} {path}") if csrf else None
        send = functools.partial(
            self.send, method, path, content=content, params=params, idempotent=idempotent
        )
        response = send(extra_headers=extra, retries=retries)
        # A request re-sent by the retry policy keeps the token it was stamped with, so each
        # retried 503 may come back as a refused token once another thread renewed it: allow
        # as many renewals as the call has attempts.
        for _ in range(self._max_retries + 1):
            if not (
                csrf
                and response.status_code == 403
                and b"Invalid CSRF token" in response.content
                and extra
            ):
                break
            logger.debug("CSRF token refused for %s %s; renewing it", method, path)
            refused = extra.get("Prefect-Csrf-Token")
            extra = self.csrf.headers(refused=refused, request=f"{method} {path}")
            if retries is not None:  # go on with what the refused attempt left of them
                retries = getattr(response.raw, "retries", None) or retries
            response = send(extra_headers=extra, retries=retries)
        self.raise_for_status(response)
        return response

    @staticmethod
    def raise_for_status(response: requests.Response) -> None:
        if 200 <= response.status_code < 300:
            return
        retries = getattr(getattr(response.raw, "retries", None), "attempts", 0)
        error = ObjectNotFound if response.status_code == 404 else PrefectHTTPStatusError
        raise error(response, retries=retries if isinstance(retries, int) else 0)

    def _read_timeout(self) -> Optional[float]:
        return None if self.timeout is None else self.timeout[1]

    def close(self) -> None:
        self._closed = True
        self.session.close()


class _CookieJar(requests.cookies.RequestsCookieJar):
    """requests' cookie jar, taking its lock only for a reply that sets a cookie.

    ``http.cookiejar`` takes the jar's lock and then enters the ``try`` that releases it:
    an exception from a signal handler run just after the ``acquire`` (Ctrl-C, a Celery
    time limit) leaves the lock held by that thread for good, and every other thread's
    next call hangs. A Prefect server sets no cookie, so its replies no longer take the
    lock; a proxy that sets one (sticky sessions) still goes through the stdlib's code."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        headers = response.info()
        if headers.get_all("Set-Cookie") or headers.get_all("Set-Cookie2"):
            super().extract_cookies(response, request)


def _check_proxies(proxies: Mapping[str, str], source: str) -> None:
    """Refuse a proxy URL that cannot be used (no host, a bad port, a password with a raw
    ``/`` or ``#``), naming where it came from but never showing it: it may hold a password."""
    for scheme, url in proxies.items():
        if scheme == "no" or not url:
            continue
        try:
            parsed = urllib3.util.parse_url(url if "://" in url else f"http://{url}")
            usable = bool(parsed.host) and (parsed.port is None or 0 < parsed.port < 65536)
        except (urllib3.exceptions.LocationParseError, ValueError):
            usable = False
        if not usable:
            raise ValueError(
                f"{source} holds a proxy URL for {scheme!r} that cannot be used (no host, a bad "
                "port, or a password with a raw '/', '?' or '#': percent-encode it); "
                "not shown, since it may hold a password"
            )


def _check_tls_files(verify: Union[bool, str], cert: Any, from_options: bool) -> None:
    """Refuse a CA bundle or client certificate path that does not exist, naming where it
    came from, instead of failing every call later with an ``OSError``."""
    if isinstance(verify, str) and not os.path.exists(verify):
        source = "httpx_settings['verify']"
        if not from_options:
            source = next(
                (name for name in _CA_VARIABLES if os.environ.get(name, "").strip() == verify),
                " or ".join(_CA_VARIABLES),
            )
        raise ValueError(f"{source} names a CA bundle that does not exist: {verify!r}")
    for path in (cert,) if isinstance(cert, str) else cert or ():
        if isinstance(path, str) and not os.path.exists(path):
            raise ValueError(f"httpx_settings['cert'] names a file that does not exist: {path!r}")


_LIVE: "weakref.WeakSet[Transport]" = weakref.WeakSet()


def _forget_in_child() -> None:
    for transport in list(_LIVE):
        transport._forget_parent_connections()


call_in_child_after_fork(_forget_in_child)


def _reached(history: Any) -> str:
    """How the last attempt that may have reached the server ended, for a message."""
    attempt = [one for one in history if may_have_reached_server(one)][-1]
    if attempt.status is not None:
        return f"was answered {attempt.status}"
    error = attempt.error
    inner = error.args[-1] if error is not None and error.args else error
    if isinstance(inner, BaseException):  # ProtocolError("Connection aborted.", the cause)
        error = inner
    return f"was sent and its connection broke ({type(error).__name__}: {error})"


def _reason(exc: BaseException) -> str:
    """The innermost useful cause of a requests/urllib3 connection error, without URLs."""
    *_, cause = causes(exc)
    text = str(cause)
    # urllib3 prefixes its messages with the connection object's repr; keep the tail.
    return text.split(": ", 1)[-1] if text.startswith("<") else text
