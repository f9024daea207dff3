"""Prefect's retry rules, expressed as a small ``urllib3.util.Retry`` subclass.

What differs from plain ``Retry``, and why (Prefect's client does the same):

* waits grow as ``2 ** n`` seconds (2, 4, 8, ...) with +/- ``jitter_factor`` spread,
  starting at the first retry (urllib3 retries the first time at once);
* ``Retry-After`` may be whole or fractional seconds or an HTTP date; a malformed or
  infinite value falls back to the exponential wait instead of failing the call, and the
  header's wait is only ever lengthened by jitter;
* no single wait is longer than ``MAX_WAIT`` (60 s; Prefect's longest default back-off is
  32 s). A server whose ``Retry-After`` asks for more is not waited for: the reply is
  returned at once and becomes an error that says what was asked (no call sleeps for
  years, and no header value can raise ``OverflowError``);
* a reply with ``Prefect-Maintenance: true`` does not use up an attempt (bounded);
* read timeouts are not retried, so a call never waits much longer than its timeout;
* a ``500`` is retried too (Prefect's client does not), but only for a bounded time: a
  server whose database is restarting answers 500 for a few seconds, while a server bug
  answers 500 for ever. Each retry of a 500 counts against the same budget, and none is
  made once ``retry_500_seconds`` have passed since the call's first 500: the wait before
  the last retry is cut short to end at that limit (see ``for_client``);
* every retry decision is logged at DEBUG on the ``orchestration_client`` logger, and
  urllib3's own WARNING for a retried connection ("Retrying (...) after connection broken
  by ...") is dropped for requests this policy retries (see :func:`quiet_urllib3_retries`);
* inside this package's pools (``_connection``) the wait before a retry is not slept in
  :meth:`PrefectRetry.sleep`, which urllib3 calls while it still holds the connection, but
  left for the pool's ``urlopen`` to sleep (:meth:`PrefectRetry.sleep_deferred`) when the
  retry starts, holding no connection. Anywhere else (a stock pool, ``_calls``' own
  retries) it sleeps at once.

Connection failures before the client has ever heard from the server are retried only a
few times, quickly (0, 0.5, 1 s), so a wrong URL fails fast; after that they get the full
exponential treatment, so a server restart is ridden out.
"""

import logging
import random
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Collection, Optional

from urllib3.exceptions import MaxRetryError, ReadTimeoutError
from urllib3.util.retry import RequestHistory, Retry

from .._retry_after import MAX_WAIT, asked_wait
from .._settings._load import DEFAULT_RETRY_500_SECONDS, RETRY_500_VARIABLE

if TYPE_CHECKING:  # urllib3 1.26 (still pinned by botocore on Python 3.9) lacks the name
    from urllib3.response import BaseHTTPResponse

__all__ = [
    "DEFAULT_RETRY_STATUS_CODES",
    "FIRST_CONTACT_CONNECT_RETRIES",
    "MAX_MAINTENANCE_RETRIES",
    "PrefectRetry",
    "quiet_urllib3_retries",
]

logger = logging.getLogger("orchestration_client")

#: Statuses Prefect retries; ``PREFECT_CLIENT_RETRY_EXTRA_CODES`` adds to them.
DEFAULT_RETRY_STATUS_CODES = frozenset({408, 429, 502, 503})
#: Connection attempts retried before the server has ever answered (0, 0.5, 1 s apart).
FIRST_CONTACT_CONNECT_RETRIES = 3
_FIRST_CONTACT_BACKOFF_FACTOR = 0.25
#: How many ``Prefect-Maintenance: true`` replies may be retried without using attempts.
MAX_MAINTENANCE_RETRIES = 10
# Statuses retried only within that time; a status listed in PREFECT_CLIENT_RETRY_EXTRA_CODES
# is retried as Prefect does instead (by count only).
_TIME_BOXED = frozenset({500})


class PrefectRetry(Retry):
    """``Retry`` with Prefect's waits, Retry-After forms and maintenance rule."""

    # Retry-After is honoured for every retried status, never a reason to retry by itself.
    RETRY_AFTER_STATUS_CODES: frozenset[int] = frozenset()

    def __init__(
        self,
        *args: Any,
        jitter_factor: float = 0.2,
        first_contact: bool = False,
        maintenance_hits: int = 0,
        time_boxed: Collection[int] = (),
        time_box: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.jitter_factor = jitter_factor
        self.first_contact = first_contact
        self.maintenance_hits = maintenance_hits
        #: Statuses retried only until ``time_box`` seconds after the call's first of them.
        self.time_boxed = frozenset(time_boxed)
        self.time_box = time_box
        #: When the call first got one of them (``time.monotonic()``), or None.
        self.time_boxed_since: Optional[float] = None
        #: Set by :meth:`increment` when the pool makes the wait itself (see module doc).
        self.defers_waits = False
        #: The wait :meth:`sleep` left for that pool (seconds; 0: none).
        self.deferred_wait = 0.0

    @classmethod
    def for_client(
        cls,
        *,
        max_retries: int,
        jitter_factor: float,
        extra_codes: Collection[int] = (),
        first_contact: bool,
        retry_500_seconds: float = DEFAULT_RETRY_500_SECONDS,
    ) -> "PrefectRetry":
        """The policy a client uses before (``first_contact``) or after its first reply.

        A 500 is retried within ``retry_500_seconds`` of the call's first 500, each retry
        counting against ``max_retries`` (so 0 retries means none, 500s included). When
        ``extra_codes`` lists 500, the user asked for Prefect's rule: 500 is then retried
        by count only, like 502 and 503. ``retry_500_seconds`` 0 never retries a 500."""
        extra = frozenset(extra_codes)
        time_boxed = _TIME_BOXED - extra if retry_500_seconds > 0 else frozenset()
        return cls(
            total=max_retries,
            connect=FIRST_CONTACT_CONNECT_RETRIES if first_contact else None,
            read=None,
            other=0,
            redirect=0,
            status_forcelist=DEFAULT_RETRY_STATUS_CODES | extra | time_boxed,
            allowed_methods=None,  # every method: the server makes creation idempotent
            backoff_factor=_FIRST_CONTACT_BACKOFF_FACTOR,
            raise_on_status=False,
            raise_on_redirect=False,
            respect_retry_after_header=True,
            jitter_factor=jitter_factor,
            first_contact=first_contact,
            time_boxed=time_boxed,
            time_box=retry_500_seconds,
        )

    def new(self, **kwargs: Any) -> "PrefectRetry":
        retry = super().new(**kwargs)
        retry.jitter_factor = self.jitter_factor
        retry.first_contact = self.first_contact
        retry.maintenance_hits = kwargs.get("maintenance_hits", self.maintenance_hits)
        retry.time_box = self.time_box
        # status_forcelist=... (the transport's policy for requests that are never
        # repeated) narrows what is time-boxed too.
        retry.time_boxed = self.time_boxed & frozenset(retry.status_forcelist or ())
        retry.time_boxed_since = self.time_boxed_since
        return retry

    def time_left(self) -> Optional[float]:
        """Seconds left to retry a time-boxed status (None: none seen yet in this call)."""
        if self.time_boxed_since is None:
            return None
        return self.time_box - (time.monotonic() - self.time_boxed_since)

    @property
    def attempts(self) -> int:
        """Retries spent so far that count against the budget."""
        return len(self.history) - self.maintenance_hits

    def increment(
        self,
        method: Optional[str] = None,
        url: Optional[str] = None,
        response: Optional["BaseHTTPResponse"] = None,
        error: Optional[Exception] = None,
        _pool: Any = None,
        _stacktrace: Optional[TracebackType] = None,
    ) -> "PrefectRetry":
        retry = self._increment(method, url, response, error, _pool, _stacktrace)
        # A pool of this package sleeps the wait itself, once it holds no connection.
        retry.defers_waits = getattr(_pool, "defers_retry_waits", False) is True
        return retry

    def _increment(
        self,
        method: Optional[str],
        url: Optional[str],
        response: Optional["BaseHTTPResponse"],
        error: Optional[Exception],
        _pool: Any,
        _stacktrace: Optional[TracebackType],
    ) -> "PrefectRetry":
        if isinstance(error, ReadTimeoutError):
            raise error.with_traceback(_stacktrace)
        wait = asked_wait(response.headers) if response is not None else None
        if wait is not None and wait > MAX_WAIT:
            # urllib3 then hands back this reply (raise_on_status is off); the error raised
            # for it names the wait the server asked for.
            logger.debug(
                "not retrying %s %s: status %s asks to wait %.0f s, over the %g s cap",
                method, url, response.status if response is not None else "?", wait, MAX_WAIT,
            )  # fmt: skip
            raise MaxRetryError(_pool, url or "", None)
        if (
            response is not None
            and response.headers.get("Prefect-Maintenance", "").lower() == "true"
            and self.maintenance_hits < MAX_MAINTENANCE_RETRIES
        ):
            entry = RequestHistory(method, url, None, response.status, None)
            return self.new(
                history=(*self.history, entry), maintenance_hits=self.maintenance_hits + 1
            )
        if response is not None and response.status in self.time_boxed:
            return self._time_boxed(method, url, response, wait, _pool)
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def _time_boxed(
        self,
        method: Optional[str],
        url: Optional[str],
        response: "BaseHTTPResponse",
        wait: Optional[float],
        pool: Any,
    ) -> "PrefectRetry":
        """Count a retry of a time-boxed status, or give up when its time is spent (or the
        server asks to wait past it): urllib3 then hands back this reply."""
        now = time.monotonic()
        since = now if self.time_boxed_since is None else self.time_boxed_since
        left = self.time_box - (now - since)
        if left <= 0 or (wait is not None and wait > left):
            logger.debug(
                "not retrying %s %s: status %s %s; a %s is retried for at most %g s after "
                "the call's first one (%s)",
                method, url, response.status,
                f"for {now - since:.1f} s" if left <= 0 else f"asks to wait {wait:.1f} s",
                response.status, self.time_box, RETRY_500_VARIABLE,
            )  # fmt: skip
            raise MaxRetryError(pool, url or "", None)
        retry = super().increment(method, url, response, None, pool)
        retry.time_boxed_since = since
        return retry

    def _jittered(self, delay: float, *, at_least: bool) -> float:
        """Spread ``delay`` by the jitter factor; ``at_least`` never shortens it."""
        if delay <= 0 or self.jitter_factor <= 0:
            return delay
        low = delay if at_least else delay * max(0.0, 1 - self.jitter_factor)
        return random.uniform(low, delay * (1 + self.jitter_factor))

    def _last_was_connect_error(self) -> bool:
        return bool(self.history) and self._is_connection_error(
            self.history[-1].error or Exception()
        )

    def get_backoff_time(self) -> float:
        if self.first_contact and self._last_was_connect_error():
            return super().get_backoff_time()  # 0, 0.5, 1 s: fail fast on a wrong URL
        return self._jittered(2.0 ** max(self.attempts, 0), at_least=False)

    def sleep(self, response: Optional["BaseHTTPResponse"] = None) -> None:
        header = response.headers.get("Retry-After") if response is not None else None
        retry_after = asked_wait(response.headers) if response is not None else None
        if retry_after is not None:  # 0, or a date already past: retry at once, as Prefect
            delay, source = self._jittered(retry_after, at_least=True), "Retry-After"
        else:
            delay, source = self.get_backoff_time(), "backoff"
        delay = min(delay, MAX_WAIT)
        last = self.history[-1] if self.history else None
        if last is not None and last.status in self.time_boxed:
            left = self.time_left()
            if left is not None and delay > left:
                # The last retry of a time-boxed status is made when its time runs out.
                delay = max(left, 0.0)
                source = f"cut to the {self.time_box:g} s limit for {last.status}s"
        if logger.isEnabledFor(logging.DEBUG):
            cause = f"status {last.status}" if last and last.status else repr(last and last.error)
            logger.debug(
                "retry %d of %s for %s %s after %s; waiting %.2f s (%s%s)",
                self.attempts,
                self.attempts + self.total if isinstance(self.total, int) else "?",
                last.method if last else "?",
                last.url if last else "?",
                cause,
                delay,
                source,
                f" {header!r}" if header and source == "backoff" else "",
            )
        if delay > 0 and self.defers_waits:
            self.deferred_wait = delay  # see sleep_deferred
        elif delay > 0:
            time.sleep(delay)

    def sleep_deferred(self) -> None:
        """Sleep the wait :meth:`sleep` left (called by this package's pools when the retry
        starts, holding no connection); nothing when none was left."""
        delay, self.deferred_wait = self.deferred_wait, 0.0
        if delay > 0:
            time.sleep(delay)


class _OwnRetryWarnings(logging.Filter):
    """Drops urllib3's "Retrying (...) after connection broken by ..." WARNING when the
    retry policy is a :class:`PrefectRetry` (the record's first argument): that retry is
    logged at DEBUG by the policy. Every other record passes, from every other pool too."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (
            isinstance(args, tuple)
            and args
            and isinstance(args[0], PrefectRetry)
            and str(record.msg).startswith("Retrying (")
        )


_FILTER = _OwnRetryWarnings()


def quiet_urllib3_retries() -> None:
    """Add the filter above to urllib3's pool logger (once). Riding out a server restart is
    normal use, so its retries are DEBUG records of this package, not urllib3 WARNINGs; the
    logger's level and handlers are left as the application set them."""
    pool_logger = logging.getLogger("urllib3.connectionpool")
    if _FILTER not in pool_logger.filters:
        pool_logger.addFilter(_FILTER)
