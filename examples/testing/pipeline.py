"""The code under test in these examples: one step of a pipeline that records itself as a
Prefect task run. Your own code takes the client the same way, so a test can hand it one."""

from typing import List

from orchestration_client import SyncPrefectClient
from orchestration_client.schemas import Task
from orchestration_client.states import Completed, Failed, Running


def record_step(client: SyncPrefectClient, name: str, key: str, rows: int) -> List[str]:
    """Record one step as a task run; returns the state types of its history."""
    run = client.create_task_run(Task(name=name), flow_run_id=None, dynamic_key=key)
    client.set_task_run_state(run.id, Running())
    final = Completed(message=f"{rows} rows") if rows >= 0 else Failed(message="no rows")
    client.set_task_run_state(run.id, final)
    return [state.type.value for state in client.read_task_run_states(run.id)]
