"""Small client-side helpers shared by the real-server tests and the benchmarks."""

from typing import List

from orchestration_client import SyncPrefectClient
from orchestration_client.filters import TaskRunFilter, TaskRunFilterTags
from orchestration_client.schemas import TaskRun
from orchestration_client.sorting import TaskRunSort


def runs_tagged(client: SyncPrefectClient, tag: str) -> List[TaskRun]:
    """Every task run carrying ``tag``, paging past the server's 200-per-page limit."""
    found: List[TaskRun] = []
    while True:
        page = client.read_task_runs(
            task_run_filter=TaskRunFilter(tags=TaskRunFilterTags(all_=[tag])),
            sort=TaskRunSort.NAME_ASC,
            limit=200,
            offset=len(found),
        )
        found += page
        if len(page) < 200:
            return found
