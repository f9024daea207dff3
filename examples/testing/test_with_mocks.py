"""Testing code that uses orchestration_client with a mocked API (`responses`): fast, no
server. The mock sees exactly the method, URL, headers and JSON a real server would.

    pip install responses pytest && python -m pytest examples/testing/test_with_mocks.py
"""

import json
import re
import uuid

import responses
from pipeline import record_step

from orchestration_client import SyncPrefectClient

API = "http://prefect.test/api"
RUN_ID = str(uuid.uuid4())


def state(type_: str) -> dict:
    return {"id": str(uuid.uuid4()), "type": type_, "name": type_.title(),
            "timestamp": "2026-01-01T00:00:00Z", "state_details": {}}


def task_run() -> dict:
    return {"id": RUN_ID, "name": "load-abc", "task_key": "load", "dynamic_key": "1",
            "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z",
            "state": state("PENDING")}


@responses.activate
def test_record_step_sends_running_then_completed() -> None:
    responses.get(f"{API}/csrf-token", status=422,
                  json={"detail": "CSRF protection is disabled."})
    responses.post(f"{API}/task_runs/", status=201, json=task_run())
    responses.post(re.compile(f"{API}/task_runs/{RUN_ID}/set_state"), status=201,
                   json={"status": "ACCEPT", "details": {"type": "accept_details"},
                         "state": state("RUNNING")})
    responses.get(f"{API}/task_run_states/", json=[state(t) for t in
                                                   ("PENDING", "RUNNING", "COMPLETED")])

    with SyncPrefectClient(API) as client:
        history = record_step(client, "load", key="1", rows=3)

    assert history == ["PENDING", "RUNNING", "COMPLETED"]
    proposals = [json.loads(call.request.body)["state"]
                 for call in responses.calls if call.request.url.endswith("/set_state")]
    assert [(p["type"], p.get("message")) for p in proposals] == [("RUNNING", None),
                                                              ("COMPLETED", "3 rows")]
    create = next(c.request for c in responses.calls if c.request.url == f"{API}/task_runs/")
    assert json.loads(create.body)["task_key"].startswith("load")
