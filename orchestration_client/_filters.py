"""Filter models for ``read_task_runs``, with Prefect's class and field names.

Two encodings, as Prefect sends them:

* ``FlowFilter``, ``TaskRunFilter``, ``DeploymentFilter`` and their parts go out in full:
  every field, explicit ``null`` and the default ``"operator": "and_"`` included.
* ``FlowRunFilter`` and its parts go out with fields left at their default omitted
  (Prefect sends only the fields that were set). The server reads null and absent alike.

The server rejects unknown keys at every depth, so these Structs also refuse unknown
fields when the client validates a request body before sending it.
"""

import datetime
import uuid
from typing import List, Optional

import msgspec

from ._enums import Operator, StateType

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


class _Filter(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Full-dump filter: every field is sent, nulls included."""


class _SetFieldsFilter(_Filter, omit_defaults=True):
    """Filter that sends only the fields changed from their default (Prefect's exclude-unset)."""


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


# ---- flow runs (sent exclude-unset) -------------------------------------------------------


class FlowRunFilterId(_SetFieldsFilter, kw_only=True):
    any_: UUIDs = None
    not_any_: UUIDs = None


class FlowRunFilterName(_SetFieldsFilter, kw_only=True):
    any_: Strings = None
    like_: Optional[str] = None


class FlowRunFilterTags(_SetFieldsFilter, kw_only=True):
    operator: Operator = Operator.and_
    all_: Strings = None
    any_: Strings = None
    is_null_: Optional[bool] = None


class FlowRunFilterDeploymentId(_SetFieldsFilter, kw_only=True):
    operator: Operator = Operator.and_
    any_: UUIDs = None
    is_null_: Optional[bool] = None


class FlowRunFilterWorkQueueName(_SetFieldsFilter, kw_only=True):
    operator: Operator = Operator.and_
    any_: Strings = None
    is_null_: Optional[bool] = None


class FlowRunFilterStateType(_SetFieldsFilter, kw_only=True):
    any_: Optional[List[StateType]] = None
    not_any_: Optional[List[StateType]] = None


class FlowRunFilterStateName(_SetFieldsFilter, kw_only=True):
    any_: Strings = None
    not_any_: Strings = None


class FlowRunFilterState(_SetFieldsFilter, kw_only=True):
    operator: Operator = Operator.and_
    type: Optional[FlowRunFilterStateType] = None
    name: Optional[FlowRunFilterStateName] = None


class FlowRunFilterFlowVersion(_SetFieldsFilter, kw_only=True):
    any_: Strings = None


class FlowRunFilterStartTime(_SetFieldsFilter, kw_only=True):
    before_: Datetime = None
    after_: Datetime = None
    is_null_: Optional[bool] = None


class FlowRunFilterEndTime(_SetFieldsFilter, kw_only=True):
    before_: Datetime = None
    after_: Datetime = None
    is_null_: Optional[bool] = None


class FlowRunFilterExpectedStartTime(_SetFieldsFilter, kw_only=True):
    before_: Datetime = None
    after_: Datetime = None


class FlowRunFilterNextScheduledStartTime(_SetFieldsFilter, kw_only=True):
    before_: Datetime = None
    after_: Datetime = None


class FlowRunFilterParentFlowRunId(_SetFieldsFilter, kw_only=True):
    """Matches subflow runs whose parent task run belongs to one of these flow runs."""

    operator: Operator = Operator.and_
    any_: UUIDs = None


class FlowRunFilterParentTaskRunId(_SetFieldsFilter, kw_only=True):
    operator: Operator = Operator.and_
    any_: UUIDs = None
    is_null_: Optional[bool] = None


class FlowRunFilterIdempotencyKey(_SetFieldsFilter, kw_only=True):
    any_: Strings = None
    not_any_: Strings = None


class FlowRunFilterCreatedBy(_SetFieldsFilter, kw_only=True):
    operator: Operator = Operator.and_
    id_: UUIDs = None
    type_: Strings = None
    is_null_: Optional[bool] = None


class FlowRunFilter(_SetFieldsFilter, kw_only=True):
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
