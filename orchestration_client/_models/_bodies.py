"""Request bodies the client sends. The server rejects unknown keys in each of them, so
they refuse unknown fields too when the client re-reads a body to validate it.

Fields left at their default are omitted (``omit_defaults``): each default here is the
server's own, so an omitted field means the same as a sent one, and a server that predates
a field (``labels`` before 3.1) never sees it unless the caller really uses it."""

import datetime
import uuid
from typing import Annotated, Any, Dict, List, Optional, Union

import msgspec
from msgspec import UNSET, Meta, UnsetType, field

from ._enums import StateType, TaskRunSort
from ._filters import DeploymentFilter, FlowFilter, FlowRunFilter, TaskRunFilter
from ._schemas import KeyValueLabels, StateDetails, TaskInput, TaskRunPolicy

__all__ = ["SetTaskRunState", "StateCreate", "TaskRunCreate", "TaskRunUpdate", "TaskRunsQuery"]

NonNegative = Annotated[int, Meta(ge=0)]


class _Body(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Base of request bodies: only fields that differ from the server's default are sent."""


class StateCreate(_Body, kw_only=True):
    """A proposed state: no ``id`` or ``timestamp``, which the server assigns. An omitted
    ``name`` is derived from ``type`` by the server, as Prefect's client derives it."""

    type: StateType
    name: Optional[str] = None
    message: Optional[str] = None
    state_details: StateDetails = field(default_factory=StateDetails)
    data: Any = None


class TaskRunCreate(_Body, kw_only=True):
    """``POST /task_runs/``; ``id`` is left out entirely unless the caller chose one, and so
    are empty ``tags``, ``labels`` and ``task_inputs``. An omitted ``name`` gets a random
    one from the server, exactly as ``null`` does."""

    id: Union[uuid.UUID, UnsetType] = UNSET
    state: Optional[StateCreate] = None
    name: Optional[str] = None
    flow_run_id: Optional[uuid.UUID] = None
    task_key: str
    dynamic_key: str
    cache_key: Optional[str] = None
    cache_expiration: Optional[datetime.datetime] = None
    task_version: Optional[str] = None
    empirical_policy: TaskRunPolicy
    tags: List[str] = field(default_factory=list)
    labels: KeyValueLabels = field(default_factory=dict)
    task_inputs: Dict[str, List[TaskInput]] = field(default_factory=dict)


class TaskRunUpdate(_Body, kw_only=True):
    """``PATCH /task_runs/{id}``: only the name can change."""

    name: Optional[str]


class SetTaskRunState(_Body, kw_only=True):
    """``POST /task_runs/{id}/set_state``."""

    state: StateCreate
    force: bool = False


class TaskRunsQuery(_Body, kw_only=True):
    """``POST /task_runs/filter``: unset filters, ``sort``, ``limit`` and a zero ``offset``
    are omitted; the server reads a missing key as its default (``ID_DESC``, its default
    limit, 0), exactly as it reads Prefect's explicit ``null``."""

    flows: Optional[FlowFilter] = None
    flow_runs: Optional[FlowRunFilter] = None
    task_runs: Optional[TaskRunFilter] = None
    deployments: Optional[DeploymentFilter] = None
    sort: Optional[TaskRunSort] = None
    limit: Optional[NonNegative] = None
    offset: NonNegative = 0
