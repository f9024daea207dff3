"""Capture real Prefect server replies as JSON fixtures for the unit tests.

Usage: python tests/support/capture_replies.py http://127.0.0.1:4200/api
Uses plain requests so the fixtures do not depend on this package.
"""

import datetime
import json
import pathlib
import sys

import requests

HERE = pathlib.Path(__file__).parents[1] / "fixtures"


def main(api: str) -> None:
    s = requests.Session()

    def post(path: str, body: object) -> requests.Response:
        reply = s.post(api + path, json=body)
        reply.raise_for_status()
        return reply

    def save(name: str, reply: requests.Response) -> None:
        (HERE / f"{name}.json").write_text(json.dumps(reply.json(), indent=1, ensure_ascii=False))

    flow = post("/flows/", {"name": "fixture-flow"}).json()
    flow_run = post("/flow_runs/", {"flow_id": flow["id"], "state": {"type": "RUNNING"}}).json()
    task = {
        "flow_run_id": flow_run["id"],
        "task_key": "fixture-key",
        "dynamic_key": "0",
        "empirical_policy": {"retries": 1, "retry_delay": [1, 3], "retry_jitter_factor": 0.5},
        "tags": ["a", "b"],
        "labels": {},
        "task_version": "1.0",
        "task_inputs": {
            "x": [
                {"input_type": "parameter", "name": "p"},
                {"input_type": "constant", "type": "int"},
                {"input_type": "flow_run", "id": flow_run["id"]},
            ]
        },
    }
    created = post("/task_runs/", task)
    save("task_run_created", created)
    run_id = created.json()["id"]
    save("result_accept", post(f"/task_runs/{run_id}/set_state", {"state": {"type": "RUNNING"}}))
    # RUNNING -> FAILED with a retry left: the server answers REJECT with AwaitingRetry.
    save("result_reject", post(f"/task_runs/{run_id}/set_state", {"state": {"type": "FAILED"}}))
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    waiting = post("/task_runs/", {**task, "dynamic_key": "wait"}).json()
    post(
        f"/task_runs/{waiting['id']}/set_state",
        {
            "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": later.isoformat()}},
            "force": True,
        },
    )
    save(
        "result_wait", post(f"/task_runs/{waiting['id']}/set_state", {"state": {"type": "RUNNING"}})
    )
    done = post("/task_runs/", {**task, "dynamic_key": "done"}).json()
    post(f"/task_runs/{done['id']}/set_state", {"state": {"type": "COMPLETED"}, "force": True})
    save("result_abort", post(f"/task_runs/{done['id']}/set_state", {"state": {"type": "CRASHED"}}))
    save("task_run_states", s.get(api + "/task_run_states/", params={"task_run_id": run_id}))
    save("task_runs_filter", post("/task_runs/filter", {"task_runs": {"id": {"any_": [run_id]}}}))


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"))
