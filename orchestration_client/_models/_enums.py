"""String enums shared by models, filters and sorting, with Prefect's wire values."""

import enum


class _WireEnum(str, enum.Enum):
    """A string enum whose ``repr`` is ``StateType.COMPLETED``, as Prefect's enums show."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


class StateType(_WireEnum):
    """The kind of a state; its value is what the server sends (upper case)."""

    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"


TERMINAL_STATE_TYPES = frozenset(
    {StateType.COMPLETED, StateType.CANCELLED, StateType.FAILED, StateType.CRASHED}
)


class SetStateStatus(_WireEnum):
    """What the orchestrator decided about a proposed state."""

    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    ABORT = "ABORT"
    WAIT = "WAIT"


class Operator(_WireEnum):
    """How the populated criteria inside one filter object combine."""

    and_ = "and_"
    or_ = "or_"


class TaskRunSort(_WireEnum):
    """Orders accepted by ``read_task_runs``; ``DURATION_*`` need a 3.9 server."""

    ID_DESC = "ID_DESC"
    EXPECTED_START_TIME_ASC = "EXPECTED_START_TIME_ASC"
    EXPECTED_START_TIME_DESC = "EXPECTED_START_TIME_DESC"
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"
    NEXT_SCHEDULED_START_TIME_ASC = "NEXT_SCHEDULED_START_TIME_ASC"
    END_TIME_DESC = "END_TIME_DESC"
    DURATION_DESC = "DURATION_DESC"
    DURATION_ASC = "DURATION_ASC"
