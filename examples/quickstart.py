"""Create a task run, move it Pending -> Running -> Completed, print its state history.

    python examples/quickstart.py

Talks to PREFECT_API_URL (or the URL in your Prefect profile); with none set and
`pip install 'orchestration_client[server]'`, it uses the local Prefect server shared by
your scripts, starting it on the first run; the server stops after 10 idle minutes, or at
once with `python -m orchestration_client server stop`. Each run creates a task run of its
own.
"""

import logging
import uuid

from orchestration_client import get_client
from orchestration_client.schemas import Task
from orchestration_client.states import Completed, Running

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

with get_client() as client:
    task = Task(name="quickstart", tags=["example"])
    run = client.create_task_run(task, flow_run_id=None, dynamic_key=uuid.uuid4().hex)
    print(f"created task run {run.name} ({run.id}) in state {run.state_name}")

    for state in (Running(), Completed(message="all rows loaded")):
        result = client.set_task_run_state(run.id, state)
        print(f"proposed {state.name}: {result.status.value}")

    print("state history:")
    for state in client.read_task_run_states(run.id):
        print(f"  {state.timestamp:%H:%M:%S.%f}  {state.type.value:<10} {state.name}")
