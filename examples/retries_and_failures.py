"""A task run that fails, is retried by the server's rules, then completes; and what the
orchestration result says when the server refuses a transition.

    python examples/retries_and_failures.py

Talks to PREFECT_API_URL (or the URL in your Prefect profile), or the local server shared
by your scripts (the `server` extra). Each run creates a task run of its own.
"""

import uuid

from orchestration_client import get_client
from orchestration_client.schemas import SetStateStatus, Task
from orchestration_client.states import Cancelling, Completed, Failed, Running


def propose(client, run_id, state):
    result = client.set_task_run_state(run_id, state)
    reason = getattr(result.details, "reason", None)
    chosen = result.state.name if result.state else None
    print(f"{state.name:>10} -> {result.status.value:<6} now {chosen}"
          + (f" ({reason})" if reason else ""))
    return result


with get_client() as client:
    task = Task(name="flaky-download", retries=1, retry_delay_seconds=0)
    run = client.create_task_run(task, flow_run_id=None, dynamic_key=uuid.uuid4().hex)

    propose(client, run.id, Running())
    # With a retry left, the server rejects Failed and schedules a retry instead.
    failed = propose(client, run.id, Failed(message="connection reset"))
    assert failed.status == SetStateStatus.REJECT and failed.state is not None
    propose(client, run.id, Running())  # the server renames this Retrying
    propose(client, run.id, Completed())
    # A finished run cannot be cancelled: the server aborts the transition.
    aborted = propose(client, run.id, Cancelling())
    assert aborted.status == SetStateStatus.ABORT

    print("history:", " -> ".join(s.name or "" for s in client.read_task_run_states(run.id)))
    print("run count:", client.read_task_run(run.id).run_count)
