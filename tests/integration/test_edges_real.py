"""Issue 10 edges on a real Prefect server: non-Latin-1 attribution and custom header values
(sent as UTF-8) are accepted, and the run they attribute works end to end."""

import json
import uuid
from typing import Any

import pytest

from orchestration_client import SyncPrefectClient
from orchestration_client.schemas import StateType, Task
from orchestration_client.states import Completed, Running

pytestmark = pytest.mark.integration


def test_a_run_under_a_non_latin1_flow_name_works(
    api_url: str, seed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = seed.flow(f"データ処理-{uuid.uuid4().hex[:6]}")
    flow_run = seed.flow_run(flow["id"])
    monkeypatch.setenv("PREFECT__FLOW_NAME", flow["name"])
    monkeypatch.setenv("PREFECT__FLOW_ID", flow["id"])
    monkeypatch.setenv("PREFECT__DEPLOYMENT_NAME", "déploiement 🚀")
    monkeypatch.setenv("PREFECT__WORKER_NAME", "ワーカー-1")
    monkeypatch.setenv("PREFECT_CLIENT_CUSTOM_HEADERS", json.dumps({"X-Team": "チーム"}))
    with SyncPrefectClient(api_url) as client:
        run = client.create_task_run(
            Task(name="集計"), uuid.UUID(flow_run["id"]), "0", name="集計-0"
        )
        assert client.set_task_run_state(run.id, Running()).state is not None
        client.set_task_run_state(run.id, Completed())
        again = client.read_task_run(run.id)
    assert again.name.startswith("集計") and str(again.flow_run_id) == flow_run["id"]
    assert again.state is not None and again.state.type == StateType.COMPLETED
