"""A client made before ``os.fork()`` and used in parent and child: every reply must answer
its own request. The stub answers ``GET .../task_runs/<id>`` with a run carrying that id,
after a short delay, so calls from several processes overlap on the wire."""

import multiprocessing
import os
import threading
import time
import uuid
from typing import Any, Iterator, List

import pytest
from support.forking import in_child, report
from support.hostile_server import HostileServer, echo_task_run

from orchestration_client import SyncPrefectClient

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@pytest.fixture
def server() -> Iterator[HostileServer]:
    started = HostileServer(fallback=echo_task_run(delay=0.01))
    yield started
    started.stop()


@pytest.fixture
def client(server: HostileServer, monkeypatch: pytest.MonkeyPatch) -> SyncPrefectClient:
    monkeypatch.setenv("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")
    made = SyncPrefectClient(server.api_url)
    # Connections in the pool before the fork, which a child could inherit.
    threads = [threading.Thread(target=made.read_task_run, args=(uuid.uuid4(),)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return made


def calls(client: SyncPrefectClient, count: int) -> List[str]:
    """Problems seen in ``count`` reads: a reply for another id, or any error."""
    problems = []
    for _ in range(count):
        run_id = str(uuid.uuid4())
        try:
            got = str(client.read_task_run(run_id).id)
        except Exception as exc:
            problems.append(f"{type(exc).__name__}: {exc}")
            continue
        if got != run_id:
            problems.append(f"asked for {run_id}, got {got}")
    return problems


def test_os_fork_parent_and_children_never_share_a_socket(client: SyncPrefectClient) -> None:
    children = [in_child(lambda: calls(client, 20)) for _ in range(2)]
    problems = calls(client, 20)
    for pid, read_end in children:
        problems += report(pid, read_end)
    assert problems == []


def _worker(client: SyncPrefectClient, queue: Any) -> None:
    queue.put(calls(client, 15))


def test_multiprocessing_fork_workers_get_fresh_connections(client: SyncPrefectClient,
                                                            server: HostileServer) -> None:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_worker, args=(client, queue)) for _ in range(3)]
    for worker in workers:
        worker.start()
    problems = calls(client, 15)
    for _ in workers:
        problems += queue.get(timeout=60)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert problems == []
    assert server.connections >= 4 + len(workers)  # each worker opened its own


def test_a_child_forked_while_a_parent_thread_is_mid_call(client: SyncPrefectClient,
                                                          server: HostileServer) -> None:
    slow_id = "00000000-0000-4000-8000-000000000001"  # the stub answers it after 1 s
    answered: List[str] = []
    thread = threading.Thread(target=lambda: answered.append(str(client.read_task_run(slow_id).id)))
    thread.start()
    deadline = time.monotonic() + 5
    while not any(slow_id in exchange.path for exchange in server.seen):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    child = in_child(lambda: calls(client, 20))  # forked while the slow call holds a connection
    problems = calls(client, 10)
    thread.join()
    problems += report(*child)
    assert answered == [slow_id]
    assert problems == []


def test_a_pool_lock_held_by_a_parent_thread_at_the_fork_does_not_hang_the_child(
    client: SyncPrefectClient, server: HostileServer
) -> None:
    mutex = client._transport._adapter.poolmanager.connection_from_url(server.api_url).pool.mutex
    with mutex:  # as if a parent thread were taking a connection just then
        child = in_child(lambda: calls(client, 3))
    assert report(*child, timeout=20) == []


def test_a_fork_that_skips_python_hooks_is_caught_by_the_pid_check(client: SyncPrefectClient) -> None:
    transport = client._transport
    inherited = transport._adapter.poolmanager
    transport._pid = -1  # as if this process were a child made without os.fork's hooks
    assert calls(client, 2) == []
    assert transport._adapter.poolmanager is not inherited
    assert transport._pid == os.getpid()
