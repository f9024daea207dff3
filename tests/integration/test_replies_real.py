"""Reply reading against a real Prefect server: its gzip replies are decoded under the size
cap, the cap fails clearly on a real page, and its own same-origin redirects are followed."""

import uuid

import pytest
import requests

from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import ReplyTooLargeError
from orchestration_client.filters import TaskRunFilter, TaskRunFilterTags
from orchestration_client.schemas import Task

pytestmark = pytest.mark.integration


def test_gzip_pages_decode_and_the_cap_applies_to_the_decoded_body(
    api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = f"cap-{uuid.uuid4().hex[:8]}"
    client = SyncPrefectClient(api_url)
    for index in range(30):
        client.create_task_run(Task(name="cap", tags=[tag]), None, index)
    query = TaskRunFilter(tags=TaskRunFilterTags(all_=[tag]))
    raw = requests.post(f"{api_url}/task_runs/filter", timeout=30,
                        json={"task_runs": {"tags": {"all_": [tag]}}})
    assert raw.raw.headers["Content-Encoding"] == "gzip"  # the server compresses pages
    compressed, decoded = int(raw.raw.headers["Content-Length"]), len(raw.content)
    assert compressed < decoded // 2
    assert len(client.read_task_runs(task_run_filter=query)) == 30

    # A limit above the compressed size but below the decoded size: the decoded size counts.
    monkeypatch.setenv("ORCHESTRATION_CLIENT_MAX_REPLY_BYTES", str(decoded // 2))
    capped = SyncPrefectClient(api_url)
    with pytest.raises(ReplyTooLargeError) as caught:
        capped.read_task_runs(task_run_filter=query)
    assert caught.value.endpoint == "POST /api/task_runs/filter"
    assert f"limit of {decoded // 2} bytes" in str(caught.value)
    monkeypatch.setenv("ORCHESTRATION_CLIENT_MAX_REPLY_BYTES", str(decoded * 2))
    assert len(SyncPrefectClient(api_url).read_task_runs(task_run_filter=query)) == 30


def test_the_servers_own_same_origin_redirect_is_followed(api_url: str) -> None:
    client = SyncPrefectClient(api_url)
    run = client.create_task_run(Task(name="redirect"), None, uuid.uuid4().hex)
    # No trailing slash: the server answers 307 to /task_run_states/ on the same origin.
    response = client._transport.request("GET", "/task_run_states",
                                         params={"task_run_id": str(run.id)})
    assert [r.status_code for r in response.history] == [307]
    assert [state["type"] for state in response.json()] == ["PENDING"]
