"""HTTP plumbing: one ``requests.Session`` set up once, and one ``request()`` that sends
bytes and returns a checked response.

The session carries the base URL, headers, auth, TLS, pool size, timeout, the retry
adapter and the CSRF token. It knows nothing about task runs.

Thread safety: after construction the session is only read, the connection pool is
thread-safe, and the CSRF token and the "server has answered" flag are guarded, so one
``Transport`` may serve many threads at once.
"""

import base64
import logging
from typing import Any, Dict, Mapping, Optional, Tuple, Union
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

import requests
import requests.adapters
import requests.structures
import requests.utils

from . import _httpx_settings as _httpx
from ._csrf import CsrfToken
from ._exceptions import (
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    ObjectNotFound,
    PrefectHTTPStatusError,
    redact_url,
)
from ._retry import PrefectRetry
from ._settings import Settings
from ._version import SERVER_API_VERSION, USER_AGENT

__all__ = ["POOL_MAXSIZE", "Transport"]

logger = logging.getLogger("orchestration_client")

#: Connections kept per host; Prefect's client allows 16 at once.
POOL_MAXSIZE = 16
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CSRF_HEADERS = ("prefect-csrf-token", "prefect-csrf-client")
# Headers that neither PREFECT_CLIENT_CUSTOM_HEADERS nor httpx_settings may replace.
_PROTECTED = frozenset({"user-agent", "authorization", *_CSRF_HEADERS})


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
    ) -> None:
        options = dict(httpx_settings or {})
        unsupported = sorted(set(options) - _httpx.SUPPORTED)
        if unsupported:
            raise TypeError(
                f"unsupported httpx_settings key(s): {', '.join(map(repr, unsupported))}; "
                f"supported: {', '.join(sorted(_httpx.SUPPORTED))}"
            )
        base_url = options.get("base_url", api)
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(
                "the API URL must start with http:// or https://, "
                f"got {redact_url(str(base_url))!r}"
            )
        base_url, auth_string = _split_userinfo(base_url, auth_string, api_key)
        self.base_url = (requests.Request("GET", base_url).prepare().url or base_url).rstrip("/")
        self.is_cloud = self.base_url.startswith(settings.cloud_api_url.rstrip("/"))
        self.timeout: _httpx.Timeout = (
            _httpx.timeout(options["timeout"])
            if "timeout" in options
            else (settings.request_timeout, settings.request_timeout)
        )
        self.follow_redirects = bool(options.get("follow_redirects", not settings.unit_test_mode))

        def retry_policy(first_contact: bool) -> PrefectRetry:
            return PrefectRetry.for_client(
                max_retries=settings.max_retries,
                jitter_factor=settings.retry_jitter_factor,
                extra_codes=settings.retry_extra_codes,
                first_contact=first_contact,
            )

        # Until the server first answers, connection failures fail fast; then the adapter
        # switches to the full policy (see send()).
        self._retry_after_contact = retry_policy(first_contact=False)
        self._adapter = requests.adapters.HTTPAdapter(
            pool_connections=4, pool_maxsize=POOL_MAXSIZE, max_retries=retry_policy(True)
        )
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
        self.csrf = CsrfToken(
            settings.csrf_support_enabled and not self.is_cloud,
            fetch=lambda client: self.send("GET", "/csrf-token", params={"client": client}),
            check=self.raise_for_status,
            timeout=self.timeout,
        )

    def _build_session(
        self,
        options: Dict[str, Any],
        settings: Settings,
        api_key: Optional[str],
        auth_string: Optional[str],
        api_version: Optional[str],
    ) -> requests.Session:
        session = requests.Session()
        # Environment lookups (proxies, CA bundle, netrc) are done once here, not per call.
        session.trust_env = False
        session.proxies = requests.utils.get_environ_proxies(self.base_url)
        if "proxy" in options or "proxies" in options:
            session.proxies = _httpx.proxies(options.get("proxy", options.get("proxies")))
        session.verify = _httpx.tls_verify(options, settings)
        if "cert" in options:
            session.cert = options["cert"]
        if "cookies" in options:
            session.cookies.update(options["cookies"])
        session.mount("http://", self._adapter)
        session.mount("https://", self._adapter)

        headers = session.headers
        for name, value in dict(options.get("headers") or {}).items():
            if name.lower() == "user-agent" or name.lower() in _CSRF_HEADERS:
                continue
            headers[name] = value
        headers.setdefault("X-PREFECT-API-VERSION", api_version or SERVER_API_VERSION)
        if auth_string:
            encoded = base64.b64encode(auth_string.encode("utf-8")).decode("ascii")
            headers["Authorization"] = f"Basic {encoded}"
        elif api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        headers.update(settings.attribution_headers)
        for name, value in settings.custom_headers.items():
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
    ) -> requests.Response:
        """One request with retries; returns whatever status came back last."""
        if self._closed:
            raise ClientClosedError("The client has been closed and cannot send requests.")
        prepared = self._prepare(method, path, content, params, extra_headers)
        url = prepared.url or ""
        session = self.session
        try:
            response = session.send(
                prepared,
                timeout=self.timeout,
                allow_redirects=self.follow_redirects,
                verify=session.verify,
                cert=session.cert,
                proxies=session.proxies,
                stream=False,
            )
        except requests.exceptions.ReadTimeout as exc:
            raise APITimeoutError(
                f"{method} {redact_url(url)}: no reply within {self._read_timeout()} s"
            ) from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise APIConnectionError(
                f"Could not reach the Prefect API for {method} {redact_url(url)}: {_reason(exc)}"
            ) from exc
        if not self._contacted:
            self._contacted = True
            self._adapter.max_retries = self._retry_after_contact
        return response

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
    ) -> requests.Response:
        """Send, with CSRF headers on mutating requests, and raise for any non-2xx reply."""
        csrf = self.csrf.enabled and method in _MUTATING
        extra = self.csrf.headers() if csrf else None
        response = self.send(method, path, content=content, params=params, extra_headers=extra)
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
            extra = self.csrf.headers(refused=extra.get("Prefect-Csrf-Token"))
            response = self.send(method, path, content=content, params=params, extra_headers=extra)
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


def _split_userinfo(
    url: str, auth_string: Optional[str], api_key: Optional[str]
) -> Tuple[str, Optional[str]]:
    """Take ``user:password@`` out of the URL; it becomes Basic auth unless the caller gave
    credentials (as httpx and requests do), so the stored URL never holds a secret."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, auth_string
    userinfo, host = parts.netloc.rsplit("@", 1)
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    if auth_string or api_key:
        return bare, auth_string
    return bare, unquote(userinfo)


def _reason(exc: BaseException) -> str:
    """The innermost useful cause of a requests/urllib3 connection error, without URLs."""
    cause: Optional[BaseException] = exc
    while cause is not None:
        reason = getattr(cause, "reason", None)
        if isinstance(reason, BaseException):
            cause = reason
            continue
        args = getattr(cause, "args", ())
        if args and isinstance(args[0], BaseException) and args[0] is not cause:
            cause = args[0]
            continue
        break
    text = str(cause) if cause is not None else str(exc)
    # urllib3 prefixes its messages with the connection object's repr; keep the tail.
    return text.split(": ", 1)[-1] if text.startswith("<") else text
