"""State changes applied at most once, even when a reply is lost.

A state change is not idempotent: if the server committed it and the reply was lost (a reset
connection, a 502 from a proxy), sending it again makes a second transition (history PENDING,
RUNNING, RUNNING and ``run_count`` 2). So each proposal carries a fresh
``state_details.transition_id`` (the server stores it with the state and returns it), is sent
with ``idempotent=False`` (the transport then retries only failures to connect), and after an
ambiguous failure the run's state history is read before anything is sent again:

* a state with our ``transition_id`` is there: the change was applied; an ACCEPT result
  with that state is returned, as the lost reply would have said;
* it is not, and nothing the server could have put in its place was written during the
  call: the proposal is sent again;
* the server may have replaced the proposal by a state of its own (an AwaitingRetry for a
  Failed with retries left, a Cached state, an AwaitingConcurrencySlot, ...), or the history
  cannot be read within the retry budget: ``StateChangeOutcomeUnknown``.

"Ambiguous" is a reset or cut-short reply, or a status the idempotent members retry
(408, 429, 502, 503, ``PREFECT_CLIENT_RETRY_EXTRA_CODES``, and 500 within
``ORCHESTRATION_CLIENT_RETRY_500_SECONDS`` of the call's first 500: a database restart
behind the server answers 500 for a few seconds). Waits between attempts are Prefect's
back-off (``PrefectRetry``), and sends and reads share one budget of
``PREFECT_CLIENT_MAX_RETRIES`` retries and the 500 time limit. The budget covers the
retries the transport makes inside each request too: a proposal or a history read whose
connection is refused is retried from what is left of it, never from a budget of its own,
so the call waits through Prefect's back-off once (62 s of waits by default), as every
other member does. When it is spent and the proposal is surely not in the history, the
last error is raised, saying how many retries were made.

The CSRF token a proposal needs is fetched before it is sent, by a request of its own
(shared with the client's other callers, with the client's retries). When no token can be
had, the proposal was not sent: the token's error is raised as it is (a
``PrefectHTTPStatusError`` for ``GET /csrf-token``, or an ``APITimeoutError`` or
``APIConnectionError`` saying the proposal was not sent), never taken for a failure of the
proposal. An earlier proposal of the same call was not applied either: the history said so
before this one was prepared.
"""

import datetime
import email.utils
import time
import uuid
from typing import Any, Callable, FrozenSet, List, Optional, Tuple

import msgspec
import requests
from urllib3.exceptions import (
    ConnectTimeoutError,
    EmptyPoolError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
)

from .._exceptions import (
    APIConnectionError,
    APITimeoutError,
    PrefectHTTPStatusError,
    ResponseDecodeError,
    causes,
)
from .._http._csrf import token_failure
from .._http._observed_retry import observed
from .._http._retry import PrefectRetry
from .._models._bodies import StateCreate
from .._models._enums import SetStateStatus, StateType
from .._models._schemas import OrchestrationResult, State, StateAcceptDetails

__all__ = ["History", "StateChangeOutcomeUnknown", "set_state_once", "stamp"]

# States the server's task-run rules may commit instead of the proposed type (Prefect 3:
# SecureTaskConcurrencySlots, PreventRunningTasksFromStoppedFlows, RetryFailedTasks). They
# are built by the server, so they carry no transition_id.
_SUBSTITUTES = {
    StateType.RUNNING: frozenset({StateType.SCHEDULED, StateType.CANCELLED, StateType.PAUSED}),
    StateType.FAILED: frozenset({StateType.SCHEDULED}),
}
# The server's Date header has whole seconds and may be cached for up to one more.
_DATE_SLACK = datetime.timedelta(seconds=2)


class StateChangeOutcomeUnknown(APIConnectionError):
    """A state change may or may not have been applied, and the client could not find out.

    Raised by ``set_task_run_state`` after a failure that may have happened after the server
    received the proposal, when reading the run's history did not settle it. Read the run
    (``read_task_run_states``) before proposing again. Attributes: ``task_run_id``,
    ``transition_id`` (sent in ``state_details``; a state carrying it was applied).
    """

    def __init__(
        self,
        message: str,
        task_run_id: Optional[uuid.UUID] = None,
        transition_id: Optional[uuid.UUID] = None,
    ) -> None:
        super().__init__(message)
        self.task_run_id = task_run_id
        self.transition_id = transition_id

    def __reduce__(self) -> Tuple[Any, ...]:
        return type(self), (str(self), self.task_run_id, self.transition_id)


#: Sends the proposal with the given retry policy (``idempotent=False``).
Send = Callable[[PrefectRetry], OrchestrationResult]
#: The run's states, oldest first, and the Date header of that reply.
History = Tuple[List[State], Optional[str]]
#: Reads the run's states with the given retry policy.
ReadHistory = Callable[[PrefectRetry], History]


def stamp(proposed: StateCreate) -> uuid.UUID:
    """Give ``proposed`` a fresh ``transition_id`` and return it. Always fresh, even when the
    state passed in carried one (a state read back from the server does): an id already in
    the run's history would make a lost proposal look applied. The caller's own
    ``StateDetails`` object is not changed."""
    details = proposed.state_details
    fresh = uuid.uuid4()
    proposed.state_details = msgspec.structs.replace(details, transition_id=fresh)
    return fresh


class _Budget:
    """The call's one retry budget: spent by the call's own retries (after an ambiguous
    failure) and by the retries the transport makes inside each request of the call (a
    refused connection, before the request reached the server)."""

    def __init__(self, policy: PrefectRetry) -> None:
        self.left = policy
        #: No retry is left: requests are sent without retries, and the call gives up.
        self.spent = False
        self.retryable: FrozenSet[int] = frozenset(policy.status_forcelist or ())

    def policy(self) -> PrefectRetry:
        """The policy for one request of the call: what is left of the budget (none once it
        is spent), for failures to connect only (a request that may have reached the
        server is never repeated by the transport: this call decides). Each retry the
        transport makes with it is taken from the budget as it is made."""
        left = self.left.new(total=0) if self.spent else self.left
        return observed(left.new(read=False, status_forcelist=frozenset()), self._took)

    def _took(self, retry: PrefectRetry) -> None:
        self.left = self.left.new(total=retry.total, connect=retry.connect, history=retry.history)

    def spend(self, url: str, exc: BaseException) -> bool:
        """Use one retry for ``exc`` and wait Prefect's back-off (or the reply's
        Retry-After); False, without waiting, when the budget is spent."""
        if self.spent:
            return False
        response = exc.response if isinstance(exc, PrefectHTTPStatusError) else None
        raw = getattr(response, "raw", None)
        raw = raw if raw is not None and hasattr(raw, "headers") else None
        try:
            if raw is not None:
                retry = self.left.increment("POST", url, response=raw)
            else:
                retry = self.left.increment("POST", url, error=ProtocolError(str(exc)))
        except MaxRetryError:
            self.spent = True
            return False
        self.left = retry
        retry.sleep(raw)
        return True


def set_state_once(
    *,
    task_run_id: uuid.UUID,
    proposed: StateCreate,
    transition_id: uuid.UUID,
    send: Send,
    read_history: ReadHistory,
    budget: PrefectRetry,
) -> OrchestrationResult:
    """Send a proposal until the server answers, never applying it twice (see module doc).

    ``send(policy)`` posts the proposal with ``idempotent=False``; ``read_history(policy)``
    returns the run's states and the Date header of that reply; each sends with the retry
    policy it is given. ``budget`` is the call's retry policy: its retries and waits are
    shared by every request the call makes."""
    started = time.monotonic()
    shared = _Budget(budget)
    url = f"/task_runs/{task_run_id}/set_state"
    ambiguous: Optional[BaseException] = None
    sent = 0
    while True:
        if ambiguous is not None:
            try:
                states, date = _look(read_history, shared)
            except (APITimeoutError, ResponseDecodeError) as exc:  # not worth repeating
                raise _unknown(task_run_id, transition_id, ambiguous, exc) from exc
            except (APIConnectionError, PrefectHTTPStatusError) as exc:
                if shared.spent or (
                    isinstance(exc, PrefectHTTPStatusError)
                    and exc.status_code not in shared.retryable
                ):
                    raise _unknown(task_run_id, transition_id, ambiguous, exc) from exc
                shared.spend(url, exc)
                continue
            accepted = _accepted(states, transition_id)
            if accepted is not None:
                return accepted
            if _maybe_replaced(states, proposed, date, time.monotonic() - started):
                raise _unknown(task_run_id, transition_id, ambiguous, None)
            if shared.spent:  # out of retries, but surely not applied: the last error stands
                raise _gave_up(ambiguous, sent - 1)
            ambiguous = None  # not applied: propose again
        try:
            sent += 1
            return send(shared.policy())
        except (APIConnectionError, APITimeoutError, PrefectHTTPStatusError) as exc:
            if token_failure(exc):
                raise  # no CSRF token, so this proposal was not sent; none before was applied
            if isinstance(exc, APITimeoutError):
                if not _may_have_been_sent(exc):
                    raise  # no free connection in time: the proposal never left the client
                # No reply in time: the server may have committed it, or may still do so.
                # Look once; if it is not there yet, the outcome is unknown (not retried, as
                # Prefect does not retry read timeouts).
                return _settle(
                    task_run_id, proposed, transition_id, exc, read_history, shared, started,
                    absent=None,
                )  # fmt: skip
            if isinstance(exc, APIConnectionError):
                if not _may_have_been_sent(exc):
                    raise  # the connect retries of the budget are spent; nothing was applied
            elif exc.status_code not in shared.retryable:
                if exc.status_code < 500:
                    raise  # the server refused it: nothing was applied
                # A 5xx that is not retried (a proxy's 504, a 500) may have followed the
                # commit: look once, and say what happened instead of a bare error.
                return _settle(
                    task_run_id, proposed, transition_id, exc, read_history, shared, started,
                    absent=exc,
                )  # fmt: skip
            ambiguous = exc
        # Out of retries, the history is still read once (at once) to tell what happened.
        shared.spend(url, ambiguous)


def _settle(
    task_run_id: uuid.UUID,
    proposed: StateCreate,
    transition_id: uuid.UUID,
    error: BaseException,
    read_history: ReadHistory,
    shared: _Budget,
    started: float,
    *,
    absent: Optional[BaseException],
) -> OrchestrationResult:
    """After a failure that is not retried: ACCEPT if the proposal is in the run's history;
    if it is not, ``absent`` (the error to raise then), or ``StateChangeOutcomeUnknown``
    when ``absent`` is None (the server may still apply it) or the history is unclear."""
    try:
        states, date = _look(read_history, shared)
    except (
        APIConnectionError,
        APITimeoutError,
        PrefectHTTPStatusError,
        ResponseDecodeError,
    ) as exc:
        raise _unknown(task_run_id, transition_id, error, exc) from exc
    accepted = _accepted(states, transition_id)
    if accepted is not None:
        return accepted
    if _maybe_replaced(states, proposed, date, time.monotonic() - started):
        raise _unknown(task_run_id, transition_id, error, None)
    if absent is None:
        raise _unknown(
            task_run_id,
            transition_id,
            error,
            None,
            "and it is not in the run's history yet, but the server may still apply it",
        )
    raise absent


def _look(read_history: ReadHistory, shared: _Budget) -> History:
    """Read the history; a connection that broke after the request went out is tried once
    more at once. A server that fails a request with a 500 may close that connection just
    after answering (uvicorn does after an unhandled error), so the next request on it is
    reset: a read, unlike a proposal, is safe to repeat, and the second try uses a fresh
    connection. A failure to connect is not tried again here (the transport already did,
    within the call's budget)."""
    try:
        return read_history(shared.policy())
    except APITimeoutError:
        raise
    except APIConnectionError as exc:
        if not _may_have_been_sent(exc):
            raise
        return read_history(shared.policy())


def _gave_up(error: BaseException, retries: int) -> BaseException:
    """``error``, as the transport would have raised it after ``retries`` retries."""
    if type(error) is PrefectHTTPStatusError and retries > error.retries:
        return PrefectHTTPStatusError(error.response, retries=retries)
    return error


def _accepted(states: List[State], transition_id: uuid.UUID) -> Optional[OrchestrationResult]:
    """The ACCEPT a lost reply carried, if a state with ``transition_id`` is in the history
    (the state a real ACCEPT carries: the stored one, with its id and timestamp)."""
    for state in reversed(states):
        if state.state_details.transition_id == transition_id:
            return OrchestrationResult(
                state=state, status=SetStateStatus.ACCEPT, details=StateAcceptDetails()
            )
    return None


def _maybe_replaced(
    states: List[State], proposed: StateCreate, date: Optional[str], elapsed: float
) -> bool:
    """Whether the latest state could be the server's replacement for our proposal, written
    while this call was under way (judged on the server's clock, from its Date header)."""
    if not states:
        return False
    latest = states[-1]
    replaceable = _SUBSTITUTES.get(proposed.type, frozenset())
    cached = proposed.state_details.cache_key is not None and latest.name == "Cached"
    if not cached and (
        latest.state_details.transition_id is not None or latest.type not in replaceable
    ):
        return False
    server_now = _parse_date(date)
    if server_now is None:
        return True  # no clock to judge by: assume the worst
    call_began = server_now - datetime.timedelta(seconds=elapsed) - _DATE_SLACK
    stamp_time = latest.timestamp
    if stamp_time.tzinfo is None:
        stamp_time = stamp_time.replace(tzinfo=datetime.timezone.utc)
    return stamp_time >= call_began


def _parse_date(value: Optional[str]) -> Optional[datetime.datetime]:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).astimezone(datetime.timezone.utc)
    except (TypeError, ValueError, OverflowError):
        return None


def _may_have_been_sent(exc: BaseException) -> bool:
    """False only when the failure was to connect at all (refused, unreachable, connect
    timeout, no free connection in the pool in time): then the server never saw the request."""
    return not any(
        isinstance(
            cause,
            (NewConnectionError, ConnectTimeoutError, requests.ConnectTimeout, EmptyPoolError),
        )
        for cause in causes(exc, through_cause=True)
    )


def _unknown(
    task_run_id: uuid.UUID,
    transition_id: uuid.UUID,
    ambiguous: BaseException,
    last: Optional[BaseException],
    reason: Optional[str] = None,
) -> StateChangeOutcomeUnknown:
    why = reason or (
        f"and reading its state history failed too ({last})"
        if last is not None and last is not ambiguous
        else "and the retries ran out"
        if last is not None
        else "and the server wrote a state of its own during the call that may have replaced "
        "the proposal"
    )
    return StateChangeOutcomeUnknown(
        f"The state change for task run {task_run_id} may or may not have been applied: the "
        f"request failed after it may have reached the server ({ambiguous}), {why}. A state "
        f"whose state_details.transition_id is {transition_id} was applied; read the run's "
        "states before proposing again.",
        task_run_id,
        transition_id,
    )
