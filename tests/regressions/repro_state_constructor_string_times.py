"""Prefect's state constructors pass scheduled_time / pause_expiration_time through, so an
ISO string (e.g. read from a queue message or config) works end to end: the run is scheduled
for that time. Ours raises TypeError. (Issue 11: constructors accept what Prefect passes
through; our State(...) and timestamp= already take ISO strings, these two do not.)
Set PREFECT_API_URL to a running 3.9.1 server to also see Prefect schedule the run.
"""
import os, sys, uuid, warnings
warnings.simplefilter("ignore")
import prefect.states as PS
import orchestration_client.states as OS

when = "2030-01-01T00:00:00Z"
if "PREFECT_API_URL" in os.environ:
    from prefect.client.orchestration import get_client
    from prefect.tasks import Task
    with get_client(sync_client=True) as pc:
        run = pc.create_task_run(Task(fn=lambda: None, name="later"), flow_run_id=None,
                                 dynamic_key=uuid.uuid4().hex, state=PS.Scheduled(scheduled_time=when))
        print("prefect: run scheduled for", pc.read_task_run(run.id).state.state_details.scheduled_time)
fails = 0
for label, call in [("Scheduled(scheduled_time=str)", lambda M: M.Scheduled(scheduled_time=when)),
                    ("AwaitingRetry(scheduled_time=str)", lambda M: M.AwaitingRetry(scheduled_time=when)),
                    ("Paused(pause_expiration_time=str)", lambda M: M.Paused(pause_expiration_time=when))]:
    call(PS)
    try:
        state = call(OS)
        print("ok  ", label, state.state_details.scheduled_time or state.state_details.pause_timeout)
    except Exception as exc:
        fails += 1
        print("FAIL", label, f"-> {type(exc).__name__}: {exc}")
sys.exit(1 if fails else 0)
