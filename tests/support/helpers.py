"""Small client-side helpers shared by the real-server tests and the benchmarks."""

import importlib.metadata
from typing import List, Optional, Tuple

from orchestration_client import SyncPrefectClient
from orchestration_client.filters import TaskRunFilter, TaskRunFilterTags
from orchestration_client.schemas import TaskRun
from orchestration_client.sorting import TaskRunSort

#: The client version and server API version this package mirrors.
NEWEST_PREFECT = (3, 9, 1)


def installed_prefect() -> Optional[Tuple[int, ...]]:
    """The installed Prefect's version (read from its metadata, without importing it), or
    None. Python 3.9 and 3.10 get an older Prefect (3.4.25, 3.8.x) from the extras."""
    try:
        text = importlib.metadata.version("prefect")
    except importlib.metadata.PackageNotFoundError:
        return None
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def prefect_is_older() -> bool:
    """True when the installed Prefect (client and server) is older than the one mirrored."""
    version = installed_prefect()
    return version is not None and version < NEWEST_PREFECT


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
