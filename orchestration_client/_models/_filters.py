"""Filter models for ``read_task_runs``, with Prefect's class and field names.

Only what the caller set goes out: a field left at its default is omitted, and the server
fills in the same default (every default here equals the server's, on every release from
3.0 to 3.9; ``tests/compat`` checks that against each server's own models). So
``operator="and_"`` or ``TaskRunFilterFlowRunId(is_null_=False)`` set explicitly mean
exactly what they say, while fields a server does not know yet are never sent unless used.

As Prefect's filters do, these accept ISO-8601 strings for datetimes and ``str`` ids for
UUIDs, converted when the filter is built; a bad string raises ``RequestValidationError``
naming the field. Unknown keyword arguments stay a ``TypeError``: a typo in a filter must
not silently match everything.

The server rejects unknown keys at every depth, so these Structs also refuse unknown
fields when the client validates a request body before sending it.
"""

import datetime
import uuid
from typing import Any, ClassVar, Dict, List, Optional, Type, Union, get_args

import msgspec

from .._exceptions import RequestValidationError
from ._enums import Operator, StateType
from ._model import Model

__all__ = [
    "DeploymentFilter",
    "DeploymentFilterConcurrencyLimit",
    "DeploymentFilterId",
    "DeploymentFilterName",
    "DeploymentFilterTags",
    "DeploymentFilterWorkQueueName",
    "FlowFilter",
    "FlowFilterId",
    "FlowFilterName",
    "FlowFilterTags",
    "FlowRunFilter",
    "FlowRunFilterCreatedBy",
    "FlowRunFilterDeploymentId",
    "FlowRunFilterEndTime",
    "FlowRunFilterExpectedStartTime",
    "FlowRunFilterFlowVersion",
    "FlowRunFilterId",
    "FlowRunFilterIdempotencyKey",
    "FlowRunFilterName",
    "FlowRunFilterNextScheduledStartTime",
    "FlowRunFilterParentFlowRunId",
    "FlowRunFilterParentTaskRunId",
    "FlowRunFilterStartTime",
    "FlowRunFilterState",
    "FlowRunFilterStateName",
    "FlowRunFilterStateType",
    "FlowRunFilterTags",
    "FlowRunFilterWorkQueueName",
    "Operator",
    "TaskRunFilter",
    "TaskRunFilterEndTime",
    "TaskRunFilterFlowRunId",
    "TaskRunFilterId",
    "TaskRunFilterName",
    "TaskRunFilterStartTime",
    "TaskRunFilterState",
    "TaskRunFilterStateName",
    "TaskRunFilterStateType",
    "TaskRunFilterSubFlowRuns",
    "TaskRunFilterTags",
]

Datetime = Optional[datetime.datetime]
UUIDs = Optional[List[uuid.UUID]]
Strings = Optional[List[str]]


class _Filter(Model, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Base of every filter: sends only fields that differ from their (server-side) default,
    has the models' pydantic-style helpers (``model_dump``, ``model_validate``, ...), and
    coerces what Prefect's filters coerce when built: ISO-8601 strings, dates and epoch
    seconds into datetimes, ``str`` ids into UUIDs, and dicts into nested filters."""

    _coerced: ClassVar[Dict[str, Any]]
    _nested: ClassVar[Dict[str, Type["_Filter"]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        hints = getattr(cls, "__annotations__", {})
        cls._coerced = {name: hint for name, hint in hints.items() if hint in (Datetime, UUIDs)}
        cls._nested = {
            name: inner
            for name, hint in hints.items()
            for inner in get_args(hint)
            if isinstance(inner, type) and issubclass(inner, _Filter)
        }

    def __post_init__(self) -> None:
        for name, hint in self._coerced.items():
            value = getattr(self, name)
            if value is None:
                continue
            if hint is Datetime and not isinstance(value, datetime.datetime):
                setattr(self, name, _to_datetime(value, self, name))
            elif (
                hint is UUIDs
                and isinstance(value, (list, tuple))
                and not all(isinstance(item, uuid.UUID) for item in value)
            ):
                setattr(self, name, [_parse_uuid(item, self, name) for item in value])
        for name, kind in self._nested.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                try:
                    setattr(self, name, kind(**value))
                except TypeError as exc:
                    raise RequestValidationError(f"{_where(self, name)}: {exc}") from None


def _where(obj: Any, name: str) -> str:
    return f"{type(obj).__name__}.{name}"


def _to_datetime(value: Union[str, datetime.date, int, float], obj: Any, name: str) -> Any:
    """What Prefect's filters accept for a datetime: an ISO-8601 string, a date (its
    midnight, UTC) or epoch seconds. Anything else is left to the checks before sending."""
    if isinstance(value, str):
        return _parse_datetime(value, obj, name)
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day, tzinfo=datetime.timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise RequestValidationError(
                f"{_where(obj, name)}: {value!r} is not a usable epoch time"
            ) from None
    return value


def _parse_datetime(text: str, obj: Any, name: str) -> datetime.datetime:
    """An ISO-8601 string as a datetime; without an offset it means UTC, as in Prefect."""
    try:
        parsed = msgspec.convert(text, datetime.datetime)
    except msgspec.ValidationError:
        try:  # also what RFC 3339 leaves out, such as a bare date
            parsed = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise RequestValidationError(
                f"{_where(obj, name)} must be a datetime or an ISO-8601 string, got {text!r}"
            ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def _parse_uuid(item: Any, obj: Any, name: str) -> Any:
    if not isinstance(item, str):
        return item  # anything else is refused, naming the path, before sending
    try:
        return uuid.UUID(item)
    except ValueError:
        raise RequestValidationError(
            f"{_where(obj, name)} must hold UUIDs or UUID strings, got {item!r}"
        ) from None


# ---- flows -------------------------------------------------------------------------------


class FlowFilterId(_Filter, kw_only=True):
    any_: UUIDs = None


class FlowFilterName(_Filter, kw_only=True):
    any_: Strings = None
    like_: Optional[str] = None


class FlowFilterTags(_Filter, kw_only=True):
    operator: Operator = Operator.and_
    all_: Strings = None
    is_null_: Optional[bool] = None


class FlowFilter(_Filter, kw_only=True):
    """Select task runs whose flow matches."""

    operator: Operator = Operator.and_
    id: Optional[FlowFilterId] = None
    name: Optional[FlowFilterName] = None
    tags: Optional[FlowFilterTags] = None


# ---- flow runs -------------------------------------------------------------------------


class FlowRunFilterId(_Filter, kw_only=True):
    any_: UUIDs = None
    not_any_: UUIDs = None


class FlowRunFilterName(_Filter, kw_only=True):
    any_: Strings = None
    like_: Optional[str] = None


class FlowRunFilterTags(_Filter, kw_only=True):
    operator: Operator = Operator.and_
    all_: Strings = None
    any_: Strings = None
    is_null_: Optional[bool] = None


class FlowRunFilterDeploymentId(_Filter, kw_only=True):
    operator: Operator = Operator.and_
    any_: UUIDs = None
    is_null_: Optional[bool] = None


class FlowRunFilterWorkQueueName(_Filter, kw_only=True):
    operator: Operator = Operator.and_
    any_: Strings = None
    is_null_: Optional[bool] = None


class FlowRunFilterStateType(_Filter, kw_only=True):
    any_: Optional[List[StateType]] = None
    not_any_: Optional[List[StateType]] = None


class FlowRunFilterStateName(_Filter, kw_only=True):
    any_: Strings = None
    not_any_: Strings = None


class FlowRunFilterState(_Filter, kw_only=True):
    operator: Operator = Operator.and_
    type: Optional[FlowRunFilterStateType] = None
    name: Optional[FlowRunFilterStateName] = None


class FlowRunFilterFlowVersion(_Filter, kw_only=True):
    any_: Strings = None


class FlowRunFilterStartTime(_Filter, kw_only=True):
    before_: Datetime = None
    after_: Datetime = None
    is_null_: Optional[bool] = None


class FlowRunFilterEndTime(_Filter, kw_only=True):
    before_: Datetime = None
    after_: Datetime = None
    is_null_: Optional[bool] = None


class FlowRunFilterExpectedStartTime(_Filter, kw_only=True):
    before_: Datetime = None
    after_: Datetime = None


class FlowRunFilterNextScheduledStartTime(_Filter, kw_only=True):
    before_: Datetime = None
    after_: Datetime = None


class FlowRunFilterParentFlowRunId(_Filter, kw_only=True):
    """Matches subflow runs whose parent task run belongs to one of these flow runs."""

    operator: Operator = Operator.and_
    any_: UUIDs = None


class FlowRunFilterParentTaskRunId(_Filter, kw_only=True):
    operator: Operator = Operator.and_
    any_: UUIDs = None
    is_null_: Optional[bool] = None


class FlowRunFilterIdempotencyKey(_Filter, kw_only=True):
    any_: Strings = None
    not_any_: Strings = None


class FlowRunFilterCreatedBy(_Filter, kw_only=True):
    operator: Operator = Operator.and_
    id_: UUIDs = None
    type_: Strings = None
    is_null_: Optional[bool] = None


class FlowRunFilter(_Filter, kw_only=True):
    """Select task runs whose flow run matches. Even an empty one drops task runs that
    have no flow run."""

    operator: Operator = Operator.and_
    id: Optional[FlowRunFilterId] = None
    name: Optional[FlowRunFilterName] = None
    tags: Optional[FlowRunFilterTags] = None
    deployment_id: Optional[FlowRunFilterDeploymentId] = None
    work_queue_name: Optional[FlowRunFilterWorkQueueName] = None
    state: Optional[FlowRunFilterState] = None
    flow_version: Optional[FlowRunFilterFlowVersion] = None
    start_time: Optional[FlowRunFilterStartTime] = None
    end_time: Optional[FlowRunFilterEndTime] = None
    expected_start_time: Optional[FlowRunFilterExpectedStartTime] = None
    next_scheduled_start_time: Optional[FlowRunFilterNextScheduledStartTime] = None
    parent_flow_run_id: Optional[FlowRunFilterParentFlowRunId] = None
    parent_task_run_id: Optional[FlowRunFilterParentTaskRunId] = None
    idempotency_key: Optional[FlowRunFilterIdempotencyKey] = None
    created_by: Optional[FlowRunFilterCreatedBy] = None


# ---- task runs ------------------------------------------------------------------------------


class TaskRunFilterId(_Filter, kw_only=True):
    any_: UUIDs = None


class TaskRunFilterName(_Filter, kw_only=True):
    any_: Strings = None
    like_: Optional[str] = None


class TaskRunFilterTags(_Filter, kw_only=True):
    operator: Operator = Operator.and_
    all_: Strings = None
    is_null_: Optional[bool] = None


class TaskRunFilterStateType(_Filter, kw_only=True):
    any_: Optional[List[StateType]] = None


class TaskRunFilterStateName(_Filter, kw_only=True):
    any_: Strings = None


class TaskRunFilterState(_Filter, kw_only=True):
    operator: Operator = Operator.and_
    type: Optional[TaskRunFilterStateType] = None
    name: Optional[TaskRunFilterStateName] = None


class TaskRunFilterStartTime(_Filter, kw_only=True):
    before_: Datetime = None
    after_: Datetime = None
    is_null_: Optional[bool] = None


class TaskRunFilterEndTime(_Filter, kw_only=True):
    before_: Datetime = None
    after_: Datetime = None
    is_null_: Optional[bool] = None


class TaskRunFilterSubFlowRuns(_Filter, kw_only=True):
    """``exists_=True``: only task runs that are the parent of a subflow run."""

    exists_: Optional[bool] = None


class TaskRunFilterFlowRunId(_Filter, kw_only=True):
    """``is_null_`` defaults to False, as in Prefect: this sub-filter without ``any_``
    means "has a flow run", not "anything"."""

    any_: UUIDs = None
    is_null_: bool = False


class TaskRunFilter(_Filter, kw_only=True):
    """Select task runs by their own fields."""

    operator: Operator = Operator.and_
    id: Optional[TaskRunFilterId] = None
    name: Optional[TaskRunFilterName] = None
    tags: Optional[TaskRunFilterTags] = None
    state: Optional[TaskRunFilterState] = None
    start_time: Optional[TaskRunFilterStartTime] = None
    end_time: Optional[TaskRunFilterEndTime] = None
    subflow_runs: Optional[TaskRunFilterSubFlowRuns] = None
    flow_run_id: Optional[TaskRunFilterFlowRunId] = None


# ---- deployments ------------------------------------------------------------------------------


class DeploymentFilterId(_Filter, kw_only=True):
    any_: UUIDs = None
    not_any_: UUIDs = None


class DeploymentFilterName(_Filter, kw_only=True):
    any_: Strings = None
    like_: Optional[str] = None


class DeploymentFilterTags(_Filter, kw_only=True):
    operator: Operator = Operator.and_
    all_: Strings = None
    any_: Strings = None
    is_null_: Optional[bool] = None


class DeploymentFilterWorkQueueName(_Filter, kw_only=True):
    any_: Strings = None


class DeploymentFilterConcurrencyLimit(_Filter, kw_only=True):
    ge_: Optional[int] = None
    le_: Optional[int] = None
    is_null_: Optional[bool] = None


class DeploymentFilter(_Filter, kw_only=True):
    """Select task runs whose flow run belongs to a matching deployment."""

    operator: Operator = Operator.and_
    id: Optional[DeploymentFilterId] = None
    name: Optional[DeploymentFilterName] = None
    tags: Optional[DeploymentFilterTags] = None
    work_queue_name: Optional[DeploymentFilterWorkQueueName] = None
    concurrency_limit: Optional[DeploymentFilterConcurrencyLimit] = None
