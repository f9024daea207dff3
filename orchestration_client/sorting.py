"""Sort orders for ``read_task_runs``."""

from ._enums import TaskRunSort

__all__ = ["TaskRunSort"]
