"""Broken replies from a real Prefect server: a TCP proxy on 127.0.0.1 cuts a reply in the
middle of its body, drips it a byte at a time, or puts a ``103 Early Hints`` before it."""

import time
import uuid
from typing import Iterator

import pytest
from support.helpers import runs_tagged
from support.hostile_server import MeddlingProxy

from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import APITimeoutError
from orchestration_client.filters import TaskRunFilter, TaskRunFilterId
from orchestration_client.schemas import Task

pytestmark = pytest.mark.integration


@pytest.fixture
def proxy(prefect_server) -> Iterator[MeddlingProxy]:  # type: ignore[no-untyped-def]
    started = MeddlingProxy(prefect_server.port)
    yield started
    started.stop()


@pytest.fixture
def client(proxy: MeddlingProxy, monkeypatch: pytest.MonkeyPatch) -> SyncPrefectClient:
    monkeypatch.setenv("PREFECT_CLIENT_RETRY_JITTER_FACTOR", "0")
    made = SyncPrefectClient(f"http://127.0.0.1:{proxy.port}/api")
    assert made.api_version()  # first contact through the proxy
    made.create_task_run(Task(name="warm"), None, uuid.uuid4().hex)  # settles CSRF
    return made


def test_replies_cut_mid_body_are_retried_for_reads_filters_and_creation(
    client: SyncPrefectClient, proxy: MeddlingProxy
) -> None:
    tag = f"cut-{uuid.uuid4().hex[:8]}"
    proxy.script = ["cut"]
    run = client.create_task_run(Task(name="cut", tags=[tag]), None, "0")
    proxy.script = ["cut"]
    assert client.read_task_run(run.id).id == run.id
    proxy.script = ["cut"]
    found = client.read_task_runs(task_run_filter=TaskRunFilter(id=TaskRunFilterId(any_=[run.id])))
    assert [r.id for r in found] == [run.id]
    assert proxy.modes_used.count("cut") == 3
    assert [r.id for r in runs_tagged(client, tag)] == [run.id]  # created once


def test_a_dripped_reply_fails_within_the_timeout(proxy: MeddlingProxy, prefect_server,  # type: ignore[no-untyped-def]
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_REQUEST_TIMEOUT", "1")
    client = SyncPrefectClient(f"http://127.0.0.1:{proxy.port}/api")
    proxy.script = ["drip"]
    started = time.monotonic()
    with pytest.raises(APITimeoutError):
        client.api_version()
    assert time.monotonic() - started < 1 + 1


def test_an_early_hints_reply_is_skipped(client: SyncPrefectClient, proxy: MeddlingProxy) -> None:
    run = client.create_task_run(Task(name="hints"), None, uuid.uuid4().hex)
    proxy.script = ["hints"]
    assert client.read_task_run(run.id).id == run.id
    assert client.api_version()  # the next call on the same connection gets its own reply
    assert "hints" in proxy.modes_used and proxy.connections == 1
