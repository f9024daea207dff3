"""A retry policy that tells a callback about every retry it grants.

urllib3 hands a request's ``Retry`` from attempt to attempt inside the request, and a caller
never sees the retries spent when the request ends in an error. Two callers need to:

* ``set_task_run_state`` spends one budget over several requests (the proposal, the reads
  of the history): each retry the transport makes inside one of them is taken from it;
* a caller waiting for another caller's CSRF token fetch knows from each retry that the
  fetch is still being answered (or refused) and goes on, not that it hangs.

The callback gets the new ``Retry`` (the one the next attempt runs with) right after it was
granted, before the wait; a retry refused (``MaxRetryError``) is not reported.
"""

from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Optional, cast

from ._retry import PrefectRetry

if TYPE_CHECKING:  # urllib3 1.26 lacks the name
    from urllib3.response import BaseHTTPResponse

__all__ = ["observed"]

OnRetry = Callable[[PrefectRetry], None]


class _Observed(PrefectRetry):
    """``PrefectRetry`` whose ``increment`` reports each retry it grants."""

    on_retry: Optional[OnRetry] = None

    def new(self, **kwargs: Any) -> "_Observed":
        retry = cast(_Observed, super().new(**kwargs))  # type(self): an _Observed
        retry.on_retry = self.on_retry
        return retry

    def increment(
        self,
        method: Optional[str] = None,
        url: Optional[str] = None,
        response: Optional["BaseHTTPResponse"] = None,
        error: Optional[Exception] = None,
        _pool: Any = None,
        _stacktrace: Optional[TracebackType] = None,
    ) -> "_Observed":
        retry = cast(_Observed, super().increment(method, url, response, error, _pool, _stacktrace))
        if self.on_retry is not None:
            self.on_retry(retry)
        return retry


def observed(policy: PrefectRetry, on_retry: OnRetry) -> PrefectRetry:
    """A copy of ``policy`` (same counts, history and time limits) that calls
    ``on_retry(new_retry)`` each time it grants a retry."""
    copy = _Observed.__new__(_Observed)
    copy.__dict__.update(policy.__dict__)
    copy.on_retry = on_retry
    return copy
