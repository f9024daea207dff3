"""500 replies from a real Prefect server: repeated where that is safe, for a bounded time.

A create whose 500 came after the server committed it is repeated and returns the run the
server holds (the server finds it by ``(flow_run_id, task_key, dynamic_key)``); a 500 that
does not go away (the server's task-run rule fails on a non-dict ``data`` in an earlier
state) fails within ``ORCHESTRATION_CLIENT_RETRY_500_SECONDS`` with the server's detail.
"""

import logging
import threading
import time
import uuid
from typing import Any, Iterator, List

import pytest
import requests
from support.fault_proxy import FaultProxy
from support.prefect_server import PrefectServer

from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import PrefectHTTPStatusError
from orchestration_client.filters import TaskRunFilter, TaskRunFilterTags
from orchestration_client.schemas import Task
from orchestration_client.states import Running

pytestmark = pytest.mark.integration


@pytest.fixture
def proxy(prefect_server: PrefectServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(prefect_server.port)
    yield proxy
    proxy.stop()


@pytest.fixture
def direct(api_url: str) -> Iterator[SyncPrefectClient]:
    """A client that bypasses the proxy, to read what the server really holds."""
    with SyncPrefectClient(api_url) as client:
        yield client


def names(client: SyncPrefectClient, run_id: uuid.UUID) -> List[str]:
    return [state.name or "" for state in client.read_task_run_states(run_id)]


@pytest.mark.parametrize("in_flow_run", [False, True], ids=["no flow run, client id", "in a flow run, server id"])
def test_a_create_answered_500_after_the_commit_returns_the_stored_run(
    proxy: FaultProxy, direct: SyncPrefectClient, seed: Any, monkeypatch: pytest.MonkeyPatch,
    in_flow_run: bool,
) -> None:
    """The proxy lets the server commit the create, then answers 500 in its place: the
    client repeats the create, and the server hands back the run it stored. One run, one
    Pending state, the id the caller asked for (or the server's first one)."""
    monkeypatch.setenv("PREFECT_CLIENT_RETRY_JITTER_FACTOR", "0")
    tag = f"r500-{uuid.uuid4().hex[:8]}"
    flow_run_id = seed.flow_run(seed.flow()["id"])["id"] if in_flow_run else None
    wanted = None if in_flow_run else uuid.uuid4()
    proxy.add("500", "POST", "/task_runs/")
    with SyncPrefectClient(proxy.api_url) as client:
        run = client.create_task_run(Task(name="created-once", tags=[tag]), flow_run_id, "0", id=wanted)
    creates = [action for method, path, action in proxy.log if method == "POST"]
    assert creates == ["500", "pass"]  # committed and answered 500, then repeated
    stored = direct.read_task_runs(task_run_filter=TaskRunFilter(tags=TaskRunFilterTags(all_=[tag])))
    assert [r.id for r in stored] == [run.id]
    assert wanted is None or run.id == wanted
    assert names(direct, run.id) == ["Pending"]
    assert direct.read_task_run(run.id).run_count == 0


def test_a_500_that_does_not_go_away_fails_within_the_limit_with_the_servers_detail(
    api_url: str, direct: SyncPrefectClient, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The real server bug: once a state with non-dict ``data`` is stored (another client
    sent ``Completed(data=42)`` as raw JSON), every later proposal for that run answers 500.
    The client keeps proposing (checking the history before each) for the configured 3 s,
    then raises the 500 with the server's detail, and nothing was applied twice."""
    monkeypatch.setenv("ORCHESTRATION_CLIENT_RETRY_500_SECONDS", "3")
    run = direct.create_task_run(Task(name="poisoned"), None, uuid.uuid4().hex)
    for state in ({"type": "RUNNING"}, {"type": "COMPLETED", "data": 42}):
        reply = requests.post(f"{api_url}/task_runs/{run.id}/set_state", json={"state": state}, timeout=30)
        assert reply.status_code == 201 and reply.json()["status"] == "ACCEPT", reply.text
    secret = "pnu_" + uuid.uuid4().hex  # the server has no auth: the key must still not leak
    with SyncPrefectClient(api_url, api_key=secret) as client, \
            caplog.at_level(logging.DEBUG, logger="orchestration_client"):
        started = time.monotonic()
        with pytest.raises(PrefectHTTPStatusError) as caught:
            client.set_task_run_state(run.id, Running())
        elapsed = time.monotonic() - started
    error = caught.value
    assert error.status_code == 500 and error.detail == {"exception_message": "Internal Server Error"}
    assert "Internal Server Error" in str(error) and "gave up after" in str(error)
    assert 3 - 0.5 <= elapsed <= 3 + 10, elapsed  # the limit, plus the last attempt and history read
    assert names(direct, run.id) == ["Pending", "Running", "Completed"]
    waits = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retry ")]
    assert waits and all("after status 500" in w for w in waits), waits
    assert any("cut to the 3 s limit" in w for w in waits), waits
    assert secret not in caplog.text


def test_a_500_on_a_read_is_retried_and_a_lasting_one_is_not_forever(
    proxy: FaultProxy, direct: SyncPrefectClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A read that the server answers 500 twice and then normally returns the run; with
    the 500 lasting, it fails after the limit instead."""
    monkeypatch.setenv("ORCHESTRATION_CLIENT_RETRY_500_SECONDS", "3")
    monkeypatch.setenv("PREFECT_CLIENT_RETRY_JITTER_FACTOR", "0")
    run = direct.create_task_run(Task(name="read"), None, uuid.uuid4().hex)
    with SyncPrefectClient(proxy.api_url) as client:
        proxy.add("500", "GET", f"/task_runs/{run.id}", times=2)
        assert client.read_task_run(run.id).id == run.id
        assert [action for method, _, action in proxy.log if method == "GET"] == ["500", "500", "pass"]
        proxy.add("500", "PATCH", f"/task_runs/{run.id}", times=10**6)
        started = time.monotonic()
        with pytest.raises(PrefectHTTPStatusError, match="500") as caught:
            client.set_task_run_name(run.id, "renamed")
        assert 3 - 0.5 <= time.monotonic() - started <= 3 + 5
    assert caught.value.retries == 2  # at 2 s, then cut to the 3 s limit
    assert direct.read_task_run(run.id).name == "renamed"  # each repeat set the same value


def test_callers_waiting_for_a_csrf_token_ride_out_its_500s_with_the_caller_fetching_it(
    proxy: FaultProxy, direct: SyncPrefectClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database restart answers the token request 500 twice. The caller fetching it
    retries 2 s and 4 s later; the 3 callers waiting for the same token wait along, though
    their own connect + read timeout (1 + 3 s) is shorter than the 6 s it takes (they used
    to fail with "has not been answered"). Every state change is applied once."""
    monkeypatch.setenv("PREFECT_CLIENT_RETRY_JITTER_FACTOR", "0")
    run_ids = [direct.create_task_run(Task(name="blip"), None, uuid.uuid4().hex).id for _ in range(4)]
    proxy.add("500", "GET", "/csrf-token", times=2)
    errors: List[BaseException] = []
    with SyncPrefectClient(proxy.api_url, httpx_settings={"timeout": (1.0, 3.0)}) as client:

        def change(run_id: uuid.UUID) -> None:
            try:
                client.set_task_run_state(run_id, Running())
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=change, args=(run_id,)) for run_id in run_ids]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        elapsed = time.monotonic() - started
    assert errors == []
    assert proxy.actions().count("500") == 2 and elapsed > 4  # the waiters outlasted 1 + 3 s
    assert all(names(direct, run_id) == ["Pending", "Running"] for run_id in run_ids)
