"""The models the client sends and returns, as ``msgspec.Struct`` classes."""

from ._models._enums import SetStateStatus, StateType
from ._models._schemas import (
    Constant,
    FlowRunResult,
    OrchestrationResult,
    Parameter,
    State,
    StateAbortDetails,
    StateAcceptDetails,
    StateDetails,
    StateRejectDetails,
    StateWaitDetails,
    Task,
    TaskRun,
    TaskRunPolicy,
    TaskRunResult,
)

__all__ = [
    "Constant",
    "FlowRunResult",
    "OrchestrationResult",
    "Parameter",
    "SetStateStatus",
    "State",
    "StateAbortDetails",
    "StateAcceptDetails",
    "StateDetails",
    "StateRejectDetails",
    "StateType",
    "StateWaitDetails",
    "Task",
    "TaskRun",
    "TaskRunPolicy",
    "TaskRunResult",
]
