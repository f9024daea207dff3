"""Migrating from Prefect: the same script for both libraries, side by side.

Prefect (needs `pip install prefect`)          | orchestration_client
-----------------------------------------------|--------------------------------------------
from prefect import get_client, task           | from orchestration_client import get_client
                                               | from orchestration_client.schemas import Task
from prefect.states import Running, Completed  | from orchestration_client.states import ...
from prefect.client.schemas.filters import (   | from orchestration_client.filters import (
    TaskRunFilter, TaskRunFilterName)          |     TaskRunFilter, TaskRunFilterName)
@task(tags=["etl"])                            | task = Task(name="extract", tags=["etl"])
def extract(): ...                             |
with get_client(sync_client=True) as client:   | with get_client() as client:  # sync only
    client.create_task_run(extract, None, "0") |     client.create_task_run(task, None, "0")

Everything below is the right-hand column; every call keeps Prefect's name and arguments.

    python examples/migration.py      # PREFECT_API_URL, your Prefect profile, or a local server
"""

import uuid

from orchestration_client import get_client
from orchestration_client.filters import TaskRunFilter, TaskRunFilterId
from orchestration_client.schemas import Task
from orchestration_client.states import Completed, Running

task = Task(name="extract", tags=["etl"])

with get_client() as client:
    key = uuid.uuid4().hex  # a new task run each time the script runs
    run = client.create_task_run(task, flow_run_id=None, dynamic_key=key, name="extract-1")
    client.set_task_run_state(run.id, Running())
    client.set_task_run_state(run.id, Completed())
    client.set_task_run_name(run.id, "extract-renamed")
    found = client.read_task_runs(task_run_filter=TaskRunFilter(id=TaskRunFilterId(any_=[run.id])))
    print(f"{found[0].name}: {found[0].state_name}, tags {found[0].tags}")
