"""Create task runs with tags and states, then page through them with filters and a sort.

    python examples/filtering.py

Talks to PREFECT_API_URL (or the URL in your Prefect profile), or the local server shared
by your scripts (the `server` extra). Each run tags its task runs with a batch of its own.
"""

import uuid

from orchestration_client import get_client
from orchestration_client.filters import (
    TaskRunFilter,
    TaskRunFilterName,
    TaskRunFilterState,
    TaskRunFilterStateType,
    TaskRunFilterTags,
)
from orchestration_client.schemas import StateType, Task
from orchestration_client.sorting import TaskRunSort
from orchestration_client.states import Completed, Failed

batch = f"batch-{uuid.uuid4().hex[:6]}"  # keeps this run's task runs apart from others

with get_client() as client:
    for number in range(7):
        task = Task(name="part", tags=[batch, "even" if number % 2 == 0 else "odd"])
        run = client.create_task_run(task, None, f"{batch}-{number}", name=f"{batch}-{number}")
        client.set_task_run_state(run.id, Failed() if number == 3 else Completed(), force=True)

    mine = TaskRunFilter(tags=TaskRunFilterTags(all_=[batch]))
    offset, page_size = 0, 3
    while True:
        page = client.read_task_runs(task_run_filter=mine, sort=TaskRunSort.NAME_ASC,
                                     limit=page_size, offset=offset)
        if not page:
            break
        print(f"page at offset {offset}: {[run.name for run in page]}")
        offset += page_size

    even = TaskRunFilter(tags=TaskRunFilterTags(all_=[batch, "even"]))
    print("even parts:", sorted(run.name for run in client.read_task_runs(task_run_filter=even)))
    failed = TaskRunFilter(name=TaskRunFilterName(like_=batch), state=TaskRunFilterState(
        type=TaskRunFilterStateType(any_=[StateType.FAILED])))
    print("failed parts:", [run.name for run in client.read_task_runs(task_run_filter=failed)])
