"""State constructors (``Completed()``, ``Scheduled(scheduled_time=...)``, ...) as in Prefect.

Each returns a new ``State`` with Prefect's type and default name. ``state_details`` may be
a ``StateDetails`` or a dict of its fields. As in Prefect, the other ``State`` fields
(``timestamp``, ``id``, ``created``, ``updated``) may be given too, as values or ISO/UUID
strings. Unlike Prefect we have no OpenTelemetry, so ``state_details.traceparent`` is left
as given (normally ``None``).
"""

import datetime
import uuid
from typing import Any, Dict, Optional, Protocol, Union

import msgspec

from ._enums import StateType
from ._schemas import State, StateDetails, utcnow

StateDetailsArg = Union[StateDetails, Dict[str, Any], None]
Timestamp = Union[datetime.datetime, str, None]
Id = Union[uuid.UUID, str, None]


def _iso_datetime(text: str, name: str) -> datetime.datetime:
    """An ISO-8601 string as an aware datetime (no offset means UTC, as in Prefect)."""
    try:
        value = msgspec.convert(text, datetime.datetime)
    except msgspec.ValidationError:
        raise ValueError(f"{name} must be an ISO-8601 datetime, got {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def _details(state_details: StateDetailsArg) -> StateDetails:
    """Copy ``state_details`` into a fresh ``StateDetails``, checking a dict's field types."""
    if state_details is None:
        return StateDetails()
    if isinstance(state_details, StateDetails):
        return msgspec.structs.replace(state_details)
    if isinstance(state_details, dict):
        try:
            return msgspec.convert(state_details, StateDetails)
        except msgspec.ValidationError as exc:
            raise ValueError(f"invalid state_details: {exc}") from None
    raise TypeError(
        f"state_details must be a StateDetails or a dict, got {type(state_details).__name__}"
    )


def _state(
    state_type: StateType,
    name: Optional[str],
    message: Optional[str],
    data: Any,
    details: StateDetails,
    **extra: Any,
) -> State:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"state name must be a str, got {type(name).__name__}")
    if message is not None and not isinstance(message, str):
        raise TypeError(f"state message must be a str, got {type(message).__name__}")
    given = {key: value for key, value in extra.items() if value is not None}
    for key in ("timestamp", "created", "updated"):
        if key in given and not isinstance(given[key], (datetime.datetime, str)):
            raise TypeError(f"state {key} must be a datetime, got {type(given[key]).__name__}")
    if "id" in given and not isinstance(given["id"], (uuid.UUID, str)):
        raise TypeError(f"state id must be a UUID, got {type(given['id']).__name__}")
    return State(
        type=state_type, name=name, message=message, data=data, state_details=details, **given
    )


class SimpleConstructor(Protocol):
    def __call__(
        self,
        *,
        name: Optional[str] = None,
        message: Optional[str] = None,
        data: Any = None,
        state_details: StateDetailsArg = None,
        timestamp: Timestamp = None,
        id: Id = None,
        created: Timestamp = None,
        updated: Timestamp = None,
    ) -> State: ...


class ScheduledConstructor(Protocol):
    def __call__(
        self,
        *,
        scheduled_time: Optional[datetime.datetime] = None,
        name: Optional[str] = None,
        message: Optional[str] = None,
        data: Any = None,
        state_details: StateDetailsArg = None,
        timestamp: Timestamp = None,
        id: Id = None,
        created: Timestamp = None,
        updated: Timestamp = None,
    ) -> State: ...


def _simple(state_type: StateType, default_name: str, doc: str) -> SimpleConstructor:
    def constructor(
        *,
        name: Optional[str] = None,
        message: Optional[str] = None,
        data: Any = None,
        state_details: StateDetailsArg = None,
        timestamp: Timestamp = None,
        id: Id = None,
        created: Timestamp = None,
        updated: Timestamp = None,
    ) -> State:
        return _state(
            state_type,
            default_name if name is None else name,
            message,
            data,
            _details(state_details),
            timestamp=timestamp,
            id=id,
            created=created,
            updated=updated,
        )

    constructor.__name__ = constructor.__qualname__ = default_name
    constructor.__doc__ = doc
    return constructor


def _scheduled(state_type: StateType, default_name: str, doc: str) -> ScheduledConstructor:
    def constructor(
        *,
        scheduled_time: Optional[datetime.datetime] = None,
        name: Optional[str] = None,
        message: Optional[str] = None,
        data: Any = None,
        state_details: StateDetailsArg = None,
        timestamp: Timestamp = None,
        id: Id = None,
        created: Timestamp = None,
        updated: Timestamp = None,
    ) -> State:
        details = _details(state_details)
        if scheduled_time is None:
            details.scheduled_time = utcnow()
        elif details.scheduled_time is not None:
            raise ValueError("An extra scheduled_time was provided in state_details")
        elif isinstance(scheduled_time, str):  # ISO-8601, as Prefect's model coerces it
            details.scheduled_time = _iso_datetime(scheduled_time, "scheduled_time")
        elif not isinstance(scheduled_time, datetime.datetime):
            raise TypeError(
                f"scheduled_time must be a datetime or an ISO-8601 string, "
                f"got {type(scheduled_time).__name__}"
            )
        else:
            details.scheduled_time = scheduled_time
        return _state(
            state_type,
            default_name if name is None else name,
            message,
            data,
            details,
            timestamp=timestamp,
            id=id,
            created=created,
            updated=updated,
        )

    constructor.__name__ = constructor.__qualname__ = default_name
    constructor.__doc__ = doc
    return constructor


Pending = _simple(StateType.PENDING, "Pending", "A PENDING state named Pending.")
Running = _simple(StateType.RUNNING, "Running", "A RUNNING state named Running.")
Completed = _simple(StateType.COMPLETED, "Completed", "A COMPLETED state named Completed.")
Failed = _simple(StateType.FAILED, "Failed", "A FAILED state named Failed.")
Crashed = _simple(StateType.CRASHED, "Crashed", "A CRASHED state named Crashed.")
Cancelled = _simple(StateType.CANCELLED, "Cancelled", "A CANCELLED state named Cancelled.")
Cancelling = _simple(StateType.CANCELLING, "Cancelling", "A CANCELLING state named Cancelling.")
Retrying = _simple(StateType.RUNNING, "Retrying", "A RUNNING state named Retrying.")
Submitting = _simple(
    StateType.PENDING, "Submitting", "A PENDING state named Submitting: the run is being sent."
)
InfrastructurePending = _simple(
    StateType.PENDING,
    "InfrastructurePending",
    "A PENDING state named InfrastructurePending: the run waits for its infrastructure.",
)

Scheduled = _scheduled(
    StateType.SCHEDULED,
    "Scheduled",
    "A SCHEDULED state for ``scheduled_time`` (default: now, UTC).",
)
AwaitingRetry = _scheduled(
    StateType.SCHEDULED,
    "AwaitingRetry",
    "A SCHEDULED state named AwaitingRetry: the run waits to be retried.",
)
AwaitingConcurrencySlot = _scheduled(
    StateType.SCHEDULED,
    "AwaitingConcurrencySlot",
    "A SCHEDULED state named AwaitingConcurrencySlot: the run waits for a concurrency slot.",
)
Late = _scheduled(
    StateType.SCHEDULED, "Late", "A SCHEDULED state named Late: the run missed its start."
)


def Paused(
    *,
    timeout_seconds: Optional[float] = None,
    pause_expiration_time: Optional[datetime.datetime] = None,
    reschedule: bool = False,
    pause_key: Optional[str] = None,
    name: Optional[str] = None,
    message: Optional[str] = None,
    data: Any = None,
    state_details: StateDetailsArg = None,
    timestamp: Timestamp = None,
    id: Id = None,
    created: Timestamp = None,
    updated: Timestamp = None,
) -> State:
    """A PAUSED state. The pause ends at ``pause_expiration_time``, or ``timeout_seconds``
    from now; give at most one of the two."""
    details = _details(state_details)
    if details.pause_timeout is not None:
        raise ValueError("An extra pause timeout was provided in state_details")
    if timeout_seconds is not None and pause_expiration_time is not None:
        raise ValueError("Cannot supply both a pause_expiration_time and timeout_seconds")
    if pause_expiration_time is not None:
        details.pause_timeout = pause_expiration_time
    elif timeout_seconds is not None:
        details.pause_timeout = utcnow() + datetime.timedelta(seconds=timeout_seconds)
    details.pause_reschedule = reschedule
    details.pause_key = pause_key
    return _state(
        StateType.PAUSED,
        "Paused" if name is None else name,
        message,
        data,
        details,
        timestamp=timestamp,
        id=id,
        created=created,
        updated=updated,
    )


def Suspended(
    *,
    timeout_seconds: Optional[float] = None,
    pause_expiration_time: Optional[datetime.datetime] = None,
    pause_key: Optional[str] = None,
    name: Optional[str] = None,
    message: Optional[str] = None,
    data: Any = None,
    state_details: StateDetailsArg = None,
    timestamp: Timestamp = None,
    id: Id = None,
    created: Timestamp = None,
    updated: Timestamp = None,
) -> State:
    """A PAUSED state named Suspended: a pause that reschedules the run."""
    return Paused(
        timeout_seconds=timeout_seconds,
        pause_expiration_time=pause_expiration_time,
        reschedule=True,
        pause_key=pause_key,
        name="Suspended" if name is None else name,
        message=message,
        data=data,
        state_details=state_details,
        timestamp=timestamp,
        id=id,
        created=created,
        updated=updated,
    )
