"""Models the server sends back (task runs, states, orchestration results) and ``Task``.

Every model is a keyword-only ``msgspec.Struct`` with the pydantic-style helpers of
``_model.Model``. Decoding ignores fields a newer server
adds (msgspec's default), so a minor Prefect release does not break old clients. Durations
are ``timedelta`` like Prefect's models; the wire carries them as float seconds, which the
client's response decoders accept (they decode non-strictly for that reason).
"""

import datetime
import hashlib
import math
import uuid
from typing import Any, ClassVar, Dict, FrozenSet, List, Mapping, Optional, Union

import msgspec
from msgspec import field

from ._enums import TERMINAL_STATE_TYPES, SetStateStatus, StateType
from ._model import Model as _Model

__all__ = [
    "Constant",
    "FlowRunResult",
    "KeyValueLabels",
    "OrchestrationDetails",
    "OrchestrationResult",
    "Parameter",
    "State",
    "StateAbortDetails",
    "StateAcceptDetails",
    "StateDetails",
    "StateRejectDetails",
    "StateWaitDetails",
    "Task",
    "TaskInput",
    "TaskRun",
    "TaskRunPolicy",
    "TaskRunResult",
    "utcnow",
]

KeyValueLabels = Dict[str, Union[str, int, float, bool]]
RetryDelay = Union[int, float, List[Union[int, float]], None]


def utcnow() -> datetime.datetime:
    """The current time as an aware UTC datetime."""
    return datetime.datetime.now(datetime.timezone.utc)


_RUN_RESET_FIELDS = frozenset({"id", "created", "updated"})


class StateDetails(_Model, kw_only=True):
    """Orchestration metadata attached to a state; every field is optional."""

    flow_run_id: Optional[uuid.UUID] = None
    task_run_id: Optional[uuid.UUID] = None
    child_flow_run_id: Optional[uuid.UUID] = None
    scheduled_time: Optional[datetime.datetime] = None
    cache_key: Optional[str] = None
    cache_expiration: Optional[datetime.datetime] = None
    deferred: Optional[bool] = None
    untrackable_result: bool = False
    pause_timeout: Optional[datetime.datetime] = None
    pause_reschedule: bool = False
    pause_key: Optional[str] = None
    run_input_keyset: Optional[Dict[str, str]] = None
    refresh_cache: Optional[bool] = None
    retriable: Optional[bool] = None
    transition_id: Optional[uuid.UUID] = None
    task_parameters_id: Optional[uuid.UUID] = None
    traceparent: Optional[str] = None
    deployment_concurrency_lease_id: Optional[uuid.UUID] = None


def default_state_name(state_type: StateType) -> str:
    """Prefect's name for an unnamed state: the type in title case (``"Completed"``)."""
    return " ".join(word.capitalize() for word in state_type.value.split("_"))


def _state_type(value: Any) -> StateType:
    if not isinstance(value, str):
        raise TypeError(f"state type must be a StateType or its name, got {type(value).__name__}")
    try:
        return StateType(value)
    except ValueError:
        raise ValueError(
            f"state type must be one of {', '.join(t.value for t in StateType)}; got {value!r}"
        ) from None


def _convert(value: Any, target: Any, name: str) -> Any:
    """``value`` as ``target`` (an ISO string as a datetime, a dict as a model, ...)."""
    try:
        return msgspec.convert(value, target, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid state {name}: {exc}") from None


class State(_Model, kw_only=True):
    """A state of a run. Locally built states get a fresh ``id`` and ``timestamp``; the server
    replaces both when it accepts the state, and neither is ever sent.

    As in Prefect: ``type`` may be given as its string value; an unnamed state is named after
    its type; a SCHEDULED state without ``scheduled_time`` is scheduled for now; ``data`` stays
    local (only a persisted Prefect result's metadata is ever sent); ``==`` ignores ``id``,
    ``created`` and ``updated``; states hash by run, timestamp and type.
    """

    _reset_fields: ClassVar[FrozenSet[str]] = _RUN_RESET_FIELDS

    id: uuid.UUID = field(default_factory=uuid.uuid4)
    created: Optional[datetime.datetime] = None
    updated: Optional[datetime.datetime] = None
    type: StateType
    name: Optional[str] = None
    timestamp: datetime.datetime = field(default_factory=utcnow)
    message: Optional[str] = None
    state_details: StateDetails = field(default_factory=StateDetails)
    data: Any = None

    def __post_init__(self) -> None:
        # Runs for every decoded state too, so the common case is a few cheap checks.
        if not isinstance(self.type, StateType):
            self.type = _state_type(self.type)
        if self.name is None:
            self.name = default_state_name(self.type)
        if not isinstance(self.state_details, StateDetails):
            self.state_details = _convert(self.state_details, StateDetails, "state_details")
        if isinstance(self.id, str):
            self.id = _convert(self.id, uuid.UUID, "id")
        if isinstance(self.timestamp, str):
            self.timestamp = _convert(self.timestamp, datetime.datetime, "timestamp")
        if isinstance(self.created, str):
            self.created = _convert(self.created, datetime.datetime, "created")
        if isinstance(self.updated, str):
            self.updated = _convert(self.updated, datetime.datetime, "updated")
        if self.type is StateType.SCHEDULED and not self.state_details.scheduled_time:
            self.state_details.scheduled_time = utcnow()
        if isinstance(self.data, dict) and self.data.get("type") == "unpersisted":
            self.data = None

    def model_copy(
        self, *, update: Optional[Mapping[str, Any]] = None, deep: bool = False
    ) -> "State":
        """A copy with a fresh ``timestamp`` (unless ``update`` sets one), as in Prefect."""
        return super().model_copy(update={"timestamp": utcnow(), **(update or {})}, deep=deep)

    def __repr__(self) -> str:
        return (
            f"{self.name}(message={self.message!r}, type={self.type.value}, result={self.data!r})"
        )

    def __str__(self) -> str:
        shown = [repr(self.message)] if self.message else []
        if self.type.value.lower() != (self.name or "").lower():
            shown.append(f"type={self.type.value}")
        return f"{self.name}({', '.join(shown)})"

    def __hash__(self) -> int:
        details = self.state_details
        return hash((details.flow_run_id, details.task_run_id, self.timestamp, self.type))

    def is_scheduled(self) -> bool:
        return self.type == StateType.SCHEDULED

    def is_pending(self) -> bool:
        return self.type == StateType.PENDING

    def is_running(self) -> bool:
        return self.type == StateType.RUNNING

    def is_completed(self) -> bool:
        return self.type == StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type == StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type == StateType.CRASHED

    def is_cancelled(self) -> bool:
        return self.type == StateType.CANCELLED

    def is_cancelling(self) -> bool:
        return self.type == StateType.CANCELLING

    def is_paused(self) -> bool:
        return self.type == StateType.PAUSED

    def is_final(self) -> bool:
        """True for the terminal types: completed, failed, crashed, cancelled."""
        return self.type in TERMINAL_STATE_TYPES


class TaskRunPolicy(_Model, kw_only=True):
    """Retry policy of a task run (``empirical_policy`` on the wire).

    ``max_retries`` and ``retry_delay_seconds`` are deprecated by Prefect but still sent;
    as in Prefect, they fill ``retries``/``retry_delay`` when those are unset.
    """

    max_retries: int = 0
    retry_delay_seconds: float = 0.0
    retries: Optional[int] = None
    retry_delay: RetryDelay = None
    retry_jitter_factor: Optional[float] = None

    def __post_init__(self) -> None:
        if not self.retries and self.max_retries:
            self.retries = self.max_retries
        if not self.retry_delay and self.retry_delay_seconds:
            self.retry_delay = self.retry_delay_seconds


class _TaskInput(_Model, tag_field="input_type"):
    """Base of the ``task_inputs`` items; the ``input_type`` tag selects the class. Hashable
    by value, like Prefect's (which are frozen); treat them as read-only."""

    @property
    def input_type(self) -> str:
        """The wire tag: ``"task_run"``, ``"flow_run"``, ``"parameter"`` or ``"constant"``."""
        return _tag(self)

    def __hash__(self) -> int:
        return hash((self.input_type, *msgspec.structs.astuple(self)))


class TaskRunResult(_TaskInput, tag="task_run", kw_only=True):
    """An input that came from another task run."""

    id: uuid.UUID


class FlowRunResult(_TaskInput, tag="flow_run", kw_only=True):
    """An input that came from a flow run."""

    id: uuid.UUID


class Parameter(_TaskInput, tag="parameter", kw_only=True):
    """An input that came from a flow parameter."""

    name: str


class Constant(_TaskInput, tag="constant", kw_only=True):
    """A constant input, described by its Python type name."""

    type: str


TaskInput = Union[TaskRunResult, FlowRunResult, Parameter, Constant]


def _tag(model: msgspec.Struct) -> str:
    tag = model.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


class TaskRun(_Model, kw_only=True):
    """A task run as the server returns it; ``==`` ignores ``id``, ``created`` and
    ``updated``, as in Prefect."""

    _reset_fields: ClassVar[FrozenSet[str]] = _RUN_RESET_FIELDS

    id: uuid.UUID
    created: Optional[datetime.datetime] = None
    updated: Optional[datetime.datetime] = None
    name: str
    flow_run_id: Optional[uuid.UUID] = None
    task_key: str
    dynamic_key: str
    cache_key: Optional[str] = None
    cache_expiration: Optional[datetime.datetime] = None
    task_version: Optional[str] = None
    empirical_policy: TaskRunPolicy = field(default_factory=TaskRunPolicy)
    tags: List[str] = field(default_factory=list)
    labels: Optional[KeyValueLabels] = field(default_factory=dict)
    state_id: Optional[uuid.UUID] = None
    task_inputs: Dict[str, List[TaskInput]] = field(default_factory=dict)
    state_type: Optional[StateType] = None
    state_name: Optional[str] = None
    run_count: int = 0
    flow_run_run_count: int = 0
    expected_start_time: Optional[datetime.datetime] = None
    next_scheduled_start_time: Optional[datetime.datetime] = None
    start_time: Optional[datetime.datetime] = None
    end_time: Optional[datetime.datetime] = None
    total_run_time: datetime.timedelta = datetime.timedelta(0)
    estimated_run_time: datetime.timedelta = datetime.timedelta(0)
    estimated_start_time_delta: datetime.timedelta = datetime.timedelta(0)
    state: Optional[State] = None

    def __post_init__(self) -> None:
        # The server schema allows null labels; Prefect's model turns them into {}.
        if self.labels is None:
            self.labels = {}


class _Details(_Model, tag_field="type"):
    """Base of the ``details`` of an orchestration result, tagged by ``type``."""

    @property
    def type(self) -> str:
        """The wire tag: ``"accept_details"``, ``"wait_details"``, ... as in Prefect."""
        return _tag(self)


class StateAcceptDetails(_Details, tag="accept_details", kw_only=True):
    """The proposed state was accepted."""


class StateWaitDetails(_Details, tag="wait_details", kw_only=True):
    """Propose again after ``delay_seconds``."""

    delay_seconds: int
    reason: Optional[str] = None


class StateRejectDetails(_Details, tag="reject_details", kw_only=True):
    """The proposed state was rejected; the result's ``state`` is what the server chose."""

    reason: Optional[str] = None


class StateAbortDetails(_Details, tag="abort_details", kw_only=True):
    """The transition was aborted; the run should stop trying."""

    reason: Optional[str] = None


OrchestrationDetails = Union[
    StateAcceptDetails, StateWaitDetails, StateRejectDetails, StateAbortDetails
]


class OrchestrationResult(_Model, kw_only=True):
    """The server's answer to ``set_task_run_state``."""

    state: Optional[State] = None
    status: SetStateStatus
    details: OrchestrationDetails


def derive_task_key(name: str) -> str:
    """A stable task key from a task name, shaped like Prefect's ``<name>-<8 hex>``."""
    plain = str.__str__(name)  # a str enum formats differently across Python versions
    digest = hashlib.sha256(plain.encode("utf-8")).hexdigest()[:8]
    return f"{plain}-{digest}"


class Task(_Model, kw_only=True):
    """What ``create_task_run`` needs to know about a task.

    ``create_task_run`` reads only these attributes, so a real ``prefect`` Task object
    works too. ``task_key`` defaults to a stable value derived from ``name``; runs that share
    ``(flow_run_id, task_key, dynamic_key)`` are the same run on the server.
    """

    name: str
    task_key: str = ""
    tags: List[str] = field(default_factory=list)
    version: Optional[str] = None
    retries: int = 0
    retry_delay_seconds: RetryDelay = 0
    retry_jitter_factor: Optional[float] = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Task name must be a non-empty str, got {self.name!r}")
        if not self.task_key:
            self.task_key = derive_task_key(self.name)
        jitter = self.retry_jitter_factor
        if jitter is not None and not (isinstance(jitter, (int, float)) and math.isfinite(jitter)):
            raise ValueError(f"retry_jitter_factor must be a finite number, got {jitter!r}")
