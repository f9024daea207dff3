"""Faults against real Prefect servers on 127.0.0.1: a server killed and restarted mid-work,
CSRF protection on, basic auth on, and one client shared by 8 threads. Bounded in count
and time."""

import concurrent.futures
import logging
import threading
import time
import uuid
from typing import Any, Callable, Dict, List, Tuple

import pytest
from support.helpers import runs_tagged

from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import PrefectHTTPStatusError
from orchestration_client.filters import TaskRunFilter, TaskRunFilterId
from orchestration_client.schemas import SetStateStatus, StateType, Task
from orchestration_client.states import Completed, Running

pytestmark = pytest.mark.integration

AUTH = "admin:s3cret-Passw0rd"




def lifecycle(client: SyncPrefectClient, tag: str, index: int,
              timings: List[float]) -> uuid.UUID:
    """Create (client-generated id), Running, Completed; each call timed."""
    run_id = uuid.uuid4()
    steps: List[Callable[[], Any]] = [
        lambda: client.create_task_run(Task(name="fault", tags=[tag]), None, index, id=run_id,
                                       name=f"{tag}-{index:04d}"),
        lambda: client.set_task_run_state(run_id, Running()),
        lambda: client.set_task_run_state(run_id, Completed()),
    ]
    for step in steps:
        started = time.monotonic()
        step()
        timings.append(time.monotonic() - started)
    return run_id


def test_server_killed_and_restarted_mid_workload(start_server: Callable[..., Any],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """200 lifecycles on 4 threads; the server is SIGKILLed after 60 and restarted on the
    same port and database 2 s later. Nothing is lost or duplicated; no call hangs."""
    monkeypatch.setenv("PREFECT_API_REQUEST_TIMEOUT", "10")
    server = start_server()
    tag = f"restart-{uuid.uuid4().hex[:8]}"
    client = SyncPrefectClient(server.api_url)
    timings: List[float] = []
    done = threading.Semaphore(0)
    restarted: Dict[str, float] = {}

    def chaos() -> None:
        for _ in range(60):
            done.acquire()
        server.kill()
        time.sleep(2)
        began = time.monotonic()
        server.start()
        restarted["seconds"] = time.monotonic() - began

    killer = threading.Thread(target=chaos)
    killer.start()

    def one(index: int) -> uuid.UUID:
        run_id = lifecycle(client, tag, index, timings)
        done.release()
        return run_id

    with caplog.at_level(logging.DEBUG, logger="orchestration_client"), \
            concurrent.futures.ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(one, range(200)))
    killer.join(timeout=120)
    # The outage was real: calls were retried after refused or broken connections.
    retried = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retry ")]
    assert any("NewConnectionError" in m or "ProtocolError" in m for m in retried), retried[:5]
    assert "seconds" in restarted, "the server was not restarted"

    runs = runs_tagged(client, tag)
    assert len(runs) == 200  # no duplicates
    assert {run.id for run in runs} == set(ids)  # nothing lost
    assert {run.state_type for run in runs} == {StateType.COMPLETED}
    # Each call rode out the outage well within the retry budget (2+4+8+16+32 s + timeout).
    assert max(timings) < 62 * 1.2 + 10
    server.stop()


def test_csrf_protected_server(start_server: Callable[..., Any]) -> None:
    server = start_server(env={"PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED": "true",
                               "PREFECT_SERVER_API_CSRF_TOKEN_EXPIRATION": "PT3S"})
    with SyncPrefectClient(server.api_url) as client:
        run = client.create_task_run(Task(name="csrf"), None, "0")
        assert client.set_task_run_name(run.id, "first").status_code == 204
        assert client.set_task_run_state(run.id, Running()).status == SetStateStatus.ACCEPT
        time.sleep(3.5)  # the server-side token expires
        assert client.set_task_run_state(run.id, Completed()).status == SetStateStatus.ACCEPT
        client._transport.csrf._token = "forged"  # the server will call it invalid
        assert client.set_task_run_name(run.id, "second").status_code == 204
        again = client.create_task_run(Task(name="csrf"), None, "1")
        assert client.read_task_run(again.id).name == again.name
        assert client.read_task_run(run.id).name == "second"
    # Without CSRF support the server refuses mutations with a clear 403.
    with SyncPrefectClient(server.api_url) as plain:
        plain._transport.csrf.enabled = False
        with pytest.raises(PrefectHTTPStatusError, match=r"403.*Missing CSRF token"):
            plain.set_task_run_name(run.id, "x")


def test_csrf_tokens_shared_by_eight_threads(start_server: Callable[..., Any]) -> None:
    """One client id, 8 threads, 2 s tokens: renewals by one thread must not make another
    thread's request fail."""
    server = start_server(env={"PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED": "true",
                               "PREFECT_SERVER_API_CSRF_TOKEN_EXPIRATION": "PT2S"})
    tag = f"csrf-threads-{uuid.uuid4().hex[:8]}"
    timings: List[float] = []
    with SyncPrefectClient(server.api_url) as client:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda i: lifecycle(client, tag, i, timings), range(160)))
        runs = runs_tagged(client, tag)
    assert {run.id for run in runs} == set(ids) and len(runs) == 160
    assert {run.state_type for run in runs} == {StateType.COMPLETED}
    server.stop()


def test_basic_auth_server(start_server: Callable[..., Any],
                           caplog: pytest.LogCaptureFixture) -> None:
    server = start_server(env={"PREFECT_SERVER_API_AUTH_STRING": AUTH})
    with SyncPrefectClient(server.api_url, auth_string=AUTH) as client:
        client.raise_for_api_version_mismatch()
        run = client.create_task_run(Task(name="auth"), None, "0")
        assert client.set_task_run_state(run.id, Running()).status == SetStateStatus.ACCEPT
        assert client.set_task_run_name(run.id, "ok").status_code == 204
        assert [s.name for s in client.read_task_run_states(run.id)] == ["Pending", "Running"]
        assert client.read_task_runs(task_run_filter=TaskRunFilter(
            id=TaskRunFilterId(any_=[run.id])))[0].name == "ok"
    wrong = "admin:wrong-Passw0rd"
    with caplog.at_level(logging.DEBUG):
        client = SyncPrefectClient(server.api_url, auth_string=wrong)
        assert client.api_healthcheck() is None  # /health needs no credentials
        with pytest.raises(PrefectHTTPStatusError) as caught:
            client.read_task_run(run.id)
        with pytest.raises(PrefectHTTPStatusError, match="401"):
            client.raise_for_api_version_mismatch()  # Unauthorized is re-raised as is
        bearer = SyncPrefectClient(server.api_url, api_key="pnu_not_for_this_server")
        with pytest.raises(PrefectHTTPStatusError, match="401"):
            bearer.hello()
    error = caught.value
    assert error.status_code == 401 and "Unauthorized" in str(error)
    shown = " ".join([str(error), repr(error), repr(client), caplog.text, str(error.detail)])
    for secret in ("s3cret-Passw0rd", "wrong-Passw0rd", "pnu_not_for_this_server"):
        assert secret not in shown


def test_eight_threads_share_one_client(api_url: str) -> None:
    """8 threads x 250 calls (50 x create, read, Running, Completed, read states)."""
    tag = f"threads-{uuid.uuid4().hex[:8]}"
    created: List[Tuple[int, uuid.UUID]] = []
    errors: List[BaseException] = []
    lock = threading.Lock()
    with SyncPrefectClient(api_url) as client:

        def worker(thread: int) -> None:
            for index in range(50):
                try:
                    run = client.create_task_run(Task(name="shared", tags=[tag]), None,
                                                 f"{thread}-{index}")
                    assert client.read_task_run(run.id).id == run.id
                    client.set_task_run_state(run.id, Running())
                    client.set_task_run_state(run.id, Completed())
                    assert [s.type for s in client.read_task_run_states(run.id)][-1] == StateType.COMPLETED
                    with lock:
                        created.append((thread, run.id))
                except BaseException as exc:  # collected: any error fails the test
                    with lock:
                        errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert errors == []
        runs = runs_tagged(client, tag)
    assert len(created) == 400 and len({run_id for _, run_id in created}) == 400
    assert len(runs) == 400 and {run.id for run in runs} == {run_id for _, run_id in created}
    assert {run.state_type for run in runs} == {StateType.COMPLETED}
