"""The client against Prefect's production topology: PostgreSQL, two API replicas and nginx
round-robin in front, all real and on 127.0.0.1 (tests/support/topology.py).

Select with ``-m scale``. Skipped, with the reason, only when PostgreSQL or nginx cannot be
installed on the machine (.ci/run installs them from Debian's packages).
"""

import collections
import concurrent.futures
import logging
import pathlib
import secrets
import threading
import time
import uuid
from typing import Any, Iterator, List, Tuple

import pytest
import requests
from support.helpers import runs_tagged
from support.topology import Topology, missing_components

from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import ObjectNotFound
from orchestration_client.filters import TaskRunFilter, TaskRunFilterId
from orchestration_client.schemas import SetStateStatus, StateType, Task
from orchestration_client.states import Completed, Running

pytestmark = [pytest.mark.integration, pytest.mark.scale]

THREADS, PER_THREAD = 16, 100


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    missing = missing_components()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install postgresql nginx)")
    started = Topology(pathlib.Path(tmp_path_factory.mktemp("topology")))
    try:
        yield started.start()
    finally:
        started.stop()




def workload(client: SyncPrefectClient, tag: str,
             during: Any = None) -> Tuple[List[uuid.UUID], List[float], List[BaseException]]:
    """THREADS x PER_THREAD lifecycles (client-generated id, Running, Completed)."""
    ids: List[uuid.UUID] = []
    timings: List[float] = []
    errors: List[BaseException] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        run_id = uuid.uuid4()
        try:
            for call in (
                lambda: client.create_task_run(Task(name="scale", tags=[tag]), None,
                                               f"{tag}-{index}", id=run_id,
                                               name=f"{tag}-{index:05d}"),
                lambda: client.set_task_run_state(run_id, Running()),
                lambda: client.set_task_run_state(run_id, Completed()),
            ):
                started = time.monotonic()
                call()
                with lock:
                    timings.append(time.monotonic() - started)
            with lock:
                ids.append(run_id)
        except BaseException as exc:  # collected and asserted empty
            with lock:
                errors.append(exc)
        if during is not None:
            during(index)

    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(THREADS * PER_THREAD)))
    return ids, timings, errors


def test_every_member_through_the_proxy(topology: Topology) -> None:
    with SyncPrefectClient(topology.api_url) as client:
        assert client.api_healthcheck() is None
        assert client.hello().json() == "👋"
        assert client.api_version() == client.client_version()
        client.raise_for_api_version_mismatch()
        run = client.create_task_run(Task(name="proxy", tags=["scale"]), None, "0")
        assert client.create_task_run(Task(name="proxy"), None, "0").id == run.id
        assert client.set_task_run_name(run.id, "through-nginx").status_code == 204
        assert client.set_task_run_state(run.id, Running()).status == SetStateStatus.ACCEPT
        assert client.set_task_run_state(run.id, Completed()).status == SetStateStatus.ACCEPT
        assert client.read_task_run(run.id).name == "through-nginx"
        assert [r.id for r in client.read_task_runs(
            task_run_filter=TaskRunFilter(id=TaskRunFilterId(any_=[run.id])))] == [run.id]
        assert [s.name for s in client.read_task_run_states(run.id)] == [
            "Pending", "Running", "Completed"]
        with pytest.raises(ObjectNotFound):
            client.read_task_run(uuid.uuid4())


def test_sixteen_threads_through_one_client(topology: Topology,
                                            caplog: pytest.LogCaptureFixture) -> None:
    tag = f"scale-{uuid.uuid4().hex[:8]}"
    with caplog.at_level(logging.DEBUG, logger="orchestration_client"), \
            SyncPrefectClient(topology.api_url) as client:
        ids, timings, errors = workload(client, tag)
        runs = runs_tagged(client, tag)
    assert errors == []
    assert len(runs) == len(ids) == THREADS * PER_THREAD
    assert {run.id for run in runs} == set(ids)
    assert {run.state_type for run in runs} == {StateType.COMPLETED}
    retries = [r for r in caplog.records if r.getMessage().startswith("retry ")]
    assert len(retries) <= len(timings) // 100, "PostgreSQL should not answer with a 503 storm"


def test_failover_when_a_replica_dies(topology: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_REQUEST_TIMEOUT", "10")
    tag = f"failover-{uuid.uuid4().hex[:8]}"
    victim = topology.replicas[0]
    events: List[str] = []

    def chaos(index: int) -> None:
        if index == 400:
            victim.kill()
            events.append("killed")
        elif index == 1000:
            victim.start()
            events.append("restarted")

    with SyncPrefectClient(topology.api_url) as client:
        ids, timings, errors = workload(client, tag, during=chaos)
        runs = runs_tagged(client, tag)
    assert events == ["killed", "restarted"]
    assert errors == []
    assert len(runs) == len(ids) == THREADS * PER_THREAD  # nothing lost, nothing doubled
    assert {run.id for run in runs} == set(ids)
    assert {run.state_type for run in runs} == {StateType.COMPLETED}
    assert max(timings) < 10  # no call outlived its timeout


def test_postgres_refuses_over_long_names_so_the_client_does_first(topology: Topology) -> None:
    """Real-server fact behind the client's name/key limits: on PostgreSQL a name or key
    that does not fit an index entry is answered with 503, which would be retried in vain."""
    name = secrets.token_hex(1400)  # 2800 random bytes: compression can't shrink them
    reply = requests.post(f"{topology.replicas[1].api_url}/task_runs/", timeout=30,
                          json={"task_key": "k", "dynamic_key": uuid.uuid4().hex, "name": name})
    assert reply.status_code == 503
    with SyncPrefectClient(topology.api_url) as client, \
            pytest.raises(ValueError, match="2800 bytes long; the limit is 2000"):
        client.create_task_run(Task(name="long"), None, "0", name=name)


# Last in the module: it restarts the topology's PostgreSQL.
def test_postgres_restart_costs_time_not_errors(topology: Topology,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """8 threads share one client, each running lifecycles (create with a client id,
    Running, Completed) for 12 s; 3 s in, PostgreSQL stops at once (``pg_ctl -m
    immediate``) and starts again 3 s later. The servers answer 500, 503 and nginx 502
    meanwhile; with default settings no lifecycle fails, none is applied twice, and every
    run the client created is COMPLETED with run_count 1 and exactly three states."""
    tag = f"pg-restart-{uuid.uuid4().hex[:8]}"
    threads, seconds, crash_at, down = 8, 12.0, 3.0, 3.0
    done: List[uuid.UUID] = []
    errors: List[BaseException] = []
    lock = threading.Lock()
    began = time.monotonic()

    def lifecycles(client: SyncPrefectClient) -> None:
        while time.monotonic() - began < seconds:
            run_id = uuid.uuid4()
            try:
                client.create_task_run(Task(name="pg-restart", tags=[tag]), None, run_id.hex,
                                       id=run_id)
                client.set_task_run_state(run_id, Running())
                client.set_task_run_state(run_id, Completed())
            except BaseException as exc:  # collected and asserted empty
                with lock:
                    errors.append(exc)
                continue
            with lock:
                done.append(run_id)

    with caplog.at_level(logging.DEBUG, logger="orchestration_client"), \
            SyncPrefectClient(topology.api_url) as client, \
            concurrent.futures.ThreadPoolExecutor(threads) as pool:
        running = [pool.submit(lifecycles, client) for _ in range(threads)]
        time.sleep(crash_at)
        topology.postgres.blink(down)
        for future in running:
            future.result()
    retried = {r.getMessage().split(" after ")[1].split(";")[0] for r in caplog.records
               if r.getMessage().startswith("retry ")}
    assert errors == [], (collections.Counter(type(e).__name__ for e in errors),
                          [str(e)[:300] for e in errors[:3]])
    assert len(done) > 8 * 4, "the threads made progress before and after the restart"
    assert retried & {"status 500", "status 503", "status 502"}, "the restart was felt"
    with SyncPrefectClient(topology.api_url) as direct:
        runs = runs_tagged(direct, tag)
        assert sorted(r.id for r in runs) == sorted(done)  # nothing lost or created twice
        for run in runs:
            assert (run.state_type, run.run_count) == (StateType.COMPLETED, 1), run
            assert [s.name for s in direct.read_task_run_states(run.id)] == [
                "Pending", "Running", "Completed"]
