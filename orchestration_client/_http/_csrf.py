"""The CSRF token of one client, for servers with CSRF protection on.

All threads of a client share one client id, and a new token replaces the old one on the
server, so one fetch serves every thread that needs a token at the same moment (single
flight): the first caller leads the fetch, outside the lock; the others wait for it.

How the fetch ends decides what the waiters get:

* **A token, or "CSRF is off"**: every waiter uses it.
* **A failure of the fetch itself**, that is one of this package's errors (the server could
  not be reached, did not answer in time, answered an error status or an unusable token,
  after the retries the transport allows): it is every waiter's answer too, each raising
  its own copy. The same request made again at once would most likely fail the same way.
* **Anything else** belongs to the leader alone: ``KeyboardInterrupt``, ``SystemExit``,
  ``gevent.Timeout``, ``GreenletExit``, Celery's ``SoftTimeLimitExceeded`` (an
  ``Exception``), an exception from a patched-in tool. It is raised in the leader only, and
  a waiter takes the fetch over (the first to wake leads, the others wait for it).

The waiters do not depend on the leader's own clean-up to learn that it stopped: the leader
holds the flight's lock from before it publishes the flight until it leaves the fetch, and
the interpreter releases that lock (C code, a ``with`` block) on the way out, wherever an
interrupt lands. A fetch that ended is recorded in one assignment; a waiter that finds the
lock free and nothing recorded takes over. Waiters also wake every quarter second to look
for a recorded end, for the one place where the interpreter may skip the release (an
interrupt at the bytecode that leaves the ``with`` block normally, on Python 3.9: the end is
recorded by then). What stays open in theory: a second interrupt landing in the
leader while the interpreter unwinds the first, between two bytecodes of its ``with`` exit;
the waiters then wait out the bound below and fail with ``APITimeoutError``. And on Python
3.9 the client's own lock, like every ``with lock:`` in Python code (threading's and
urllib3's included), may stay held if a signal lands on the bytecode that leaves its block;
Python 3.10+ releases it before it looks for signals (measured: 295 of 31,240 interrupts
left such a lock held on 3.9, none on 3.10 to 3.13).

How long a waiter waits: as long as the leader's fetch goes on within the limits the leader
rides with (``PREFECT_CLIENT_MAX_RETRIES``, the 500 time limit, the back-off waits), since
each retry of the fetch tells the waiters it was answered (a 500 while the database
restarts, a 503) or refused and is being tried again. So a database blip costs a waiter the
same time as the leader, not an error. Without such a sign of life a waiter waits at most
one attempt's time, its connect + read timeout, plus one back-off wait (at most 60 s) after
a retry; then it fails with ``APITimeoutError`` and clears the flight, so a hanging token
endpoint never makes a caller wait behind another longer than its own timeout per attempt
(the leader's attempt fails at the same timeout, and its error is the waiters' answer).
A fetch a caller leads itself is an ordinary request with the client's timeouts and retries.

When no token can be had, the request that needed it is not sent: the error raised says so
(a timeout or connection failure names the request; an error status or a bad token reply
names ``GET /csrf-token``), and ``token_failure(error)`` is true for it, so that
``set_task_run_state`` does not take it for a failure of its proposal.

Threads, greenlets and eventlet: the client's lock is held only for a few assignments,
never across I/O, so even a plain ``threading.Lock`` made before ``gevent.monkey.patch_all()``
cannot be held by a greenlet that has switched out. The flight's lock is made for each
fetch from ``threading.Lock`` as it is at that moment, so after monkey-patching it is a green
one and waiting greenlets let the leader run.

The token source is a plain callable (``fetch(client_id, progress) -> Response``, calling
``progress()`` at each retry) and a status check, so this module does not depend on the
transport that uses it.
"""

import copy
import datetime
import logging
import re
import threading
import time
import uuid
from typing import Callable, Dict, Optional, Tuple, Union

import msgspec
import requests

from .._exceptions import (
    APIConnectionError,
    APITimeoutError,
    OrchestrationClientError,
    ResponseDecodeError,
)
from .._models._codec import ReplyDecoder
from .._retry_after import MAX_WAIT

__all__ = ["CsrfToken", "Fetch", "token_failure"]

logger = logging.getLogger("orchestration_client")

#: Sends ``GET /csrf-token?client=<id>`` and returns the reply, whatever its status; calls
#: the second argument, ``progress()``, each time the request is retried.
Fetch = Callable[[str, Callable[[], None]], requests.Response]

_RENEWAL_MARGIN = datetime.timedelta(seconds=5)
#: What a token must look like to go back in a header: visible ASCII, nothing else.
_SENDABLE = re.compile(r"[\x21-\x7e]+")
#: How often a waiter looks for an end recorded without the flight's lock being released.
_LOOK_EVERY = 0.25
#: The attribute that marks an error raised because no token could be had.
_MARK = "_orchestration_client_no_csrf_token"


class _TokenReply(msgspec.Struct):
    token: str
    expiration: datetime.datetime


_token_reply: ReplyDecoder[_TokenReply] = ReplyDecoder(_TokenReply, "CSRF token")


class _Settled:
    """The fetch ended with a token, or with "CSRF is off"."""


_SETTLED = _Settled()


class _Flight:
    """One token fetch in progress; the callers waiting for it read the outcome.

    Its leader holds ``running`` from before the flight is published until it leaves the
    fetch, whichever way; ``outcome`` is set once, in one assignment, when the fetch ended.
    """

    def __init__(self, attempt: Optional[float]) -> None:
        self.running = threading.Lock()  # looked up now: green after monkey-patching
        self.outcome: Union[_Settled, OrchestrationClientError, None] = None
        self._attempt = attempt
        #: How long the fetch may go without a sign of life, and until when.
        self.patience = attempt
        self.alive_until = None if attempt is None else time.monotonic() + attempt

    def heard(self) -> None:
        """The fetch was answered or refused, and is retried: one more back-off wait and
        attempt. Called by the leader; a plain assignment, read by the waiters."""
        if self._attempt is not None:
            self.patience = MAX_WAIT + self._attempt
            self.alive_until = time.monotonic() + self.patience


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
        one request, which bounds how long a waiter goes without a sign of life from the
        fetch it waits for."""
        self.enabled = enabled
        self.client_id = str(uuid.uuid4())
        self._fetch = fetch
        self._check = check
        connect, read = timeout if timeout is not None else (None, None)
        self._attempt = None if connect is None or read is None else connect + read
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
        while True:
            with self._lock:
                ready = self._ready(refused)
                flight = self._flight
            if ready is not None:
                return ready
            if flight is None:
                mine = _Flight(self._attempt)
                with mine.running:  # released on the way out, however the leader leaves
                    with self._lock:
                        ready = self._ready(refused)
                        flight = self._flight
                        if ready is None and flight is None:
                            self._flight = mine
                    if ready is not None:
                        return ready
                    if flight is None:
                        return self._lead(mine)
            if self._follow(flight):
                return self._current()
            # The leader was stopped by something of its own: take over, or wait for the
            # waiter that already did.

    def _ready(self, refused: Optional[str]) -> Optional[Dict[str, str]]:
        """The headers to send when no fetch is needed (called under the lock)."""
        if not self.enabled:
            return {}
        token = self._token
        fresh = self._renew_at is None or _now() < self._renew_at
        if token is not None and token != refused and fresh:
            return self._headers(token)
        return None

    def _current(self) -> Dict[str, str]:
        """The token the fetch just made (by any caller), used as it is."""
        with self._lock:
            token = self._token
            return {} if not self.enabled or token is None else self._headers(token)

    def _headers(self, token: str) -> Dict[str, str]:
        return {"Prefect-Csrf-Token": token, "Prefect-Csrf-Client": self.client_id}

    def _lead(self, flight: _Flight) -> Dict[str, str]:
        """Fetch a token for every waiting caller; the I/O runs outside the lock. Anything
        but the fetch's own failure leaves the flight without an outcome: a waiter takes
        over once the lock the caller holds is released."""
        try:
            outcome = self._fetch_token(flight.heard)
        except OrchestrationClientError as exc:  # the fetch failed: the waiters' answer too
            self._end(flight, exc)
            raise
        self._end(flight, outcome)
        return self._current()

    def _end(
        self,
        flight: _Flight,
        outcome: Union[Tuple[str, datetime.datetime], OrchestrationClientError, None],
    ) -> None:
        """Keep what the fetch gave, then record its end (the one assignment waiters read)."""
        with self._lock:
            if outcome is None:
                self.enabled = False
            elif isinstance(outcome, tuple):
                self._token, self._renew_at = outcome
            if self._flight is flight:
                self._flight = None
            flight.outcome = outcome if isinstance(outcome, BaseException) else _SETTLED

    def _follow(self, flight: _Flight) -> bool:
        """Wait for another caller's fetch: True when it settled the token (or CSRF is off),
        False when its leader left it without an outcome; raises its failure, or
        ``APITimeoutError`` when it went without a sign of life for too long."""
        while flight.outcome is None:
            until = flight.alive_until
            left = _LOOK_EVERY if until is None else min(_LOOK_EVERY, until - time.monotonic())
            if left <= 0:
                self._drop(flight)  # its leader may never clean up: let others lead
                raise APITimeoutError(
                    "the token request made for this client by another caller has not been "
                    f"answered within {flight.patience:g} s (the connect + read timeout"
                    f"{' and a back-off wait' if flight.patience != self._attempt else ''})"
                )
            if flight.running.acquire(timeout=left):  # the leader has left the fetch
                flight.running.release()
                break
        outcome = flight.outcome
        if outcome is None:
            self._drop(flight)
            return False
        if isinstance(outcome, BaseException):
            try:
                error = copy.copy(outcome)  # each caller raises its own object
            except Exception:
                error = outcome
            raise error from None
        return True

    def _drop(self, flight: _Flight) -> None:
        with self._lock:
            if self._flight is flight:
                self._flight = None

    def _fetch_token(self, progress: Callable[[], None]) -> Optional[Tuple[str, datetime.datetime]]:
        """A new token and when to renew it, or None when the server has CSRF off."""
        response = self._fetch(self.client_id, progress)
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
