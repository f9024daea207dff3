"""The CSRF token of one client, for servers with CSRF protection on.

All threads of a client share one client id, and a new token replaces the old one on the
server, so one fetch serves every thread that needs a token at the same moment (single
flight): the first caller leads the fetch, outside the lock; the others wait for it.

How the fetch ends decides what the waiters get:

* **A token, or "CSRF is off"**: every waiter uses it.
* **A failure of the fetch itself**, that is one of this package's errors (the server could
  not be reached, did not answer in time, answered an error status or an unusable token):
  it is every waiter's answer too, each raising its own copy. The same request made again
  at once would most likely fail the same way, and the transport has already spent the
  retries it allows, so waiters do not queue up to repeat it one after another.
* **Anything else** belongs to the leader alone: ``KeyboardInterrupt``, ``SystemExit``,
  ``gevent.Timeout``, ``GreenletExit``, Celery's ``SoftTimeLimitExceeded`` (an
  ``Exception``), an exception from a patched-in tool. It is raised in the leader only, and
  a waiter takes the fetch over (the first to wake leads, the others wait for it).

A waiter never waits for other callers' fetches longer than its own budget (connect + read
timeout) in all, counted from when it began to wait, taken-over flights included; then it
fails with ``APITimeoutError``. So a hanging token endpoint never makes one caller wait
behind another, and a fetch it leads itself is an ordinary request with the client's
timeouts. A waiter that times out also clears the flight it waited for if it is still the
current one, so a leader stopped so abruptly that it could not clean up never blocks
later callers.

Threads, greenlets and eventlet: the lock is held only for a few assignments, never across
I/O, so even a plain ``threading.Lock`` made before ``gevent.monkey.patch_all()`` cannot be
held by a greenlet that has switched out. The event waiters block on is made for each fetch
from ``threading.Event`` as it is at that moment, so after monkey-patching it is the green
one and waiting greenlets let the leader run.

When no token can be had, the request that needed it is not sent: the error raised says so
(a timeout or connection failure names the request; an error status or a bad token reply
names ``GET /csrf-token``), and ``token_failure(error)`` is true for it, so that
``set_task_run_state`` does not take it for a failure of its proposal.

The token source is a plain callable (``fetch(client_id) -> Response``) and a status check,
so this module does not depend on the transport that uses it.
"""

import copy
import datetime
import logging
import re
import threading
import time
import uuid
from typing import Callable, Dict, Optional, Tuple

import msgspec
import requests

from .._exceptions import (
    APIConnectionError,
    APITimeoutError,
    OrchestrationClientError,
    ResponseDecodeError,
)
from .._models._codec import ReplyDecoder

__all__ = ["CsrfToken", "Fetch", "token_failure"]

logger = logging.getLogger("orchestration_client")

#: Sends ``GET /csrf-token?client=<id>`` and returns the reply, whatever its status.
Fetch = Callable[[str], requests.Response]

_RENEWAL_MARGIN = datetime.timedelta(seconds=5)
#: What a token must look like to go back in a header: visible ASCII, nothing else.
_SENDABLE = re.compile(r"[\x21-\x7e]+")
#: The attribute that marks an error raised because no token could be had.
_MARK = "_orchestration_client_no_csrf_token"


class _TokenReply(msgspec.Struct):
    token: str
    expiration: datetime.datetime


_token_reply: ReplyDecoder[_TokenReply] = ReplyDecoder(_TokenReply, "CSRF token")


class _Flight:
    """One token fetch in progress; the callers waiting for it read the outcome."""

    def __init__(self) -> None:
        self.done = threading.Event()  # looked up now: green after monkey-patching
        #: The fetch failed: every waiter raises this (a copy of it).
        self.error: Optional[BaseException] = None
        #: The leader was stopped by something of its own: a waiter takes over.
        self.abandoned = False


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def token_failure(error: BaseException) -> bool:
    """Whether ``error`` was raised because no CSRF token could be had: the request that
    needed it was not sent (or, after a refused token, not sent again)."""
    return getattr(error, _MARK, False) is True


class CsrfToken:
    """The CSRF token of one client: fetched on first need, renewed shortly before it
    expires or when the server calls it invalid, switched off for good if the server has
    CSRF disabled.

    A thread renews a refused token only if it is still the current one; if another thread
    has renewed it meanwhile, the new token is simply used.
    """

    def __init__(
        self,
        enabled: bool,
        *,
        fetch: Fetch,
        check: Callable[[requests.Response], None],
        timeout: Optional[Tuple[Optional[float], Optional[float]]] = None,
    ) -> None:
        """``check`` raises for a non-2xx reply; ``timeout`` is the (connect, read) pair of
        one request, which bounds how long a thread waits for another thread's fetch."""
        self.enabled = enabled
        self.client_id = str(uuid.uuid4())
        self._fetch = fetch
        self._check = check
        connect, read = timeout if timeout is not None else (None, None)
        self._wait_limit = None if connect is None or read is None else connect + read
        self._token: Optional[str] = None
        self._renew_at: Optional[datetime.datetime] = None
        self._flight: Optional[_Flight] = None
        self._lock = threading.Lock()

    def headers(
        self, *, refused: Optional[str] = None, request: Optional[str] = None
    ) -> Dict[str, str]:
        """Headers for a mutating request; ``refused`` is a token the server rejected,
        ``request`` names the request (``"POST /path"``) in an error when no token can be
        had, which is marked as such (:func:`token_failure`)."""
        try:
            return self._get(refused)
        except OrchestrationClientError as exc:
            error = _not_sent(exc, request, renewing=refused is not None)
            if error is exc:
                raise
            raise error from exc

    def _get(self, refused: Optional[str]) -> Dict[str, str]:
        deadline: Optional[float] = None
        while True:
            with self._lock:
                if not self.enabled:
                    return {}
                token = self._token
                fresh = self._renew_at is None or _now() < self._renew_at
                if token is not None and token != refused and fresh:
                    return self._headers(token)
                flight, leader = self._flight, self._flight is None
                if flight is None:
                    flight = self._flight = _Flight()
            if leader:
                self._lead(flight)
                break
            if deadline is None and self._wait_limit is not None:
                deadline = time.monotonic() + self._wait_limit
            if self._follow(flight, deadline):
                break
            # The leader was stopped by something of its own: take over, or wait for the
            # waiter that already did, with what is left of this caller's budget.
        with self._lock:  # the fetch just made (by any caller) is used as it is
            token = self._token
            return {} if not self.enabled or token is None else self._headers(token)

    def _headers(self, token: str) -> Dict[str, str]:
        return {"Prefect-Csrf-Token": token, "Prefect-Csrf-Client": self.client_id}

    def _lead(self, flight: _Flight) -> None:
        """Fetch a token for every waiting caller; the I/O runs outside the lock."""
        outcome: Optional[Tuple[str, datetime.datetime]] = None
        try:
            outcome = self._fetch_token()
        except OrchestrationClientError as exc:  # the fetch failed: the waiters' answer too
            flight.error = exc
            raise
        except BaseException:  # the leader's own: the waiters take over
            flight.abandoned = True
            raise
        finally:
            with self._lock:
                if flight.error is None and not flight.abandoned:
                    if outcome is None:
                        self.enabled = False
                    else:
                        self._token, self._renew_at = outcome
                if self._flight is flight:
                    self._flight = None
            flight.done.set()

    def _follow(self, flight: _Flight, deadline: Optional[float]) -> bool:
        """Wait for another caller's fetch until ``deadline``: True when it settled the
        token (or CSRF is off), False when its leader was stopped; raises its failure."""
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not flight.done.wait(left):
            with self._lock:
                if self._flight is flight:  # its leader may never clean up: let others lead
                    self._flight = None
            raise APITimeoutError(
                f"no CSRF token within {self._wait_limit:g} s: the token request made for "
                "this client by another caller has not been answered"
            )
        if flight.error is not None:
            try:
                error = copy.copy(flight.error)  # each caller raises its own object
            except Exception:
                error = flight.error
            raise error from None
        return not flight.abandoned

    def _fetch_token(self) -> Optional[Tuple[str, datetime.datetime]]:
        """A new token and when to renew it, or None when the server has CSRF off."""
        response = self._fetch(self.client_id)
        if response.status_code == 404 or (
            response.status_code == 422 and b"CSRF protection is disabled" in response.content
        ):
            logger.debug("server has CSRF protection off; not sending CSRF tokens")
            return None
        self._check(response)
        token = _token_reply.decode(response)
        if not _SENDABLE.fullmatch(token.token):
            raise ResponseDecodeError(
                "GET /csrf-token answered with a token that cannot be sent back in a header "
                "(only visible ASCII is allowed); not shown, since it is a credential",
                endpoint="GET /csrf-token",
                response=response,
            )
        expiration = token.expiration
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=datetime.timezone.utc)
        # Renew a little early (a quarter of the lifetime, at most 5 s), so that a request
        # stamped just before expiry does not arrive just after it.
        margin = min(_RENEWAL_MARGIN, max((expiration - _now()) / 4, datetime.timedelta(0)))
        return token.token, expiration - margin


def _not_sent(
    error: OrchestrationClientError, request: Optional[str], *, renewing: bool
) -> OrchestrationClientError:
    """``error``, which kept a token from being had, as the error of the request that
    needed it, marked (:func:`token_failure`). A timeout or a connection failure gets a
    message that names the request and says it was not sent; an error status or a bad token
    reply already names ``GET /csrf-token``."""
    if type(error) in (APITimeoutError, APIConnectionError):
        what = request or "the request"
        why = (
            f"the server refused the CSRF token of {what}, and no new one could be had, so "
            "it was not sent again"
            if renewing
            else f"no CSRF token could be had, so {what} was not sent"
        )
        error = type(error)(f"{why}: {error}")
    setattr(error, _MARK, True)
    return error
