"""Sort orders for ``read_task_runs``."""

from ._models._enums import TaskRunSort

__all__ = ["TaskRunSort"]
