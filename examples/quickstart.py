"""Create a task run, move it Pending -> Running -> Completed, print its state history.

    PREFECT_API_URL=http://127.0.0.1:4200/api python examples/quickstart.py

With no PREFECT_API_URL and `pip install 'orchestration_client[server]'`, a local Prefect
server is started for the script and stopped at the end.
"""

import logging

from orchestration_client import get_client
from orchestration_client.schemas import Task
from orchestration_client.states import Completed, Running

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

with get_client() as client:
    task = Task(name="quickstart", tags=["example"])
    run = client.create_task_run(task, flow_run_id=None, dynamic_key="0")
    print(f"created task run {run.name} ({run.id}) in state {run.state_name}")

    for state in (Running(), Completed(message="all rows loaded")):
        result = client.set_task_run_state(run.id, state)
        print(f"proposed {state.name}: {result.status.value}")

    print("state history:")
    for state in client.read_task_run_states(run.id):
        print(f"  {state.timestamp:%H:%M:%S.%f}  {state.type.value:<10} {state.name}")
