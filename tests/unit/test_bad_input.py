"""Bad input for every public method: a clear TypeError/ValueError, and no request made."""

import datetime
import uuid
from typing import Any, Callable, Iterator

import pytest
import responses

from orchestration_client import SyncPrefectClient, get_client
from orchestration_client.filters import (
    FlowFilter,
    FlowRunFilter,
    FlowRunFilterId,
    TaskRunFilter,
    TaskRunFilterStartTime,
    TaskRunFilterTags,
)
from orchestration_client.schemas import State, StateType, Task
from orchestration_client.states import Completed, Paused, Running, Scheduled

API = "http://prefect.test/api"
ID = uuid.UUID(int=1)
LONG = "x" * 2001


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def bad_state() -> State:
    state = Completed()
    state.type = "EXPLODED"  # type: ignore[assignment]
    return state


def unserialisable_state() -> State:
    state = Completed()
    state.message = object()  # type: ignore[assignment]
    return state


def naive_tags_state() -> State:
    state = Running()
    state.state_details.run_input_keyset = {"a": 1}  # type: ignore[dict-item]
    return state


CASES: "list[tuple[str, Callable[[SyncPrefectClient], Any], type, str]]" = [
    # ids
    ("read bad id", lambda c: c.read_task_run("12"), ValueError, "task_run_id must be a UUID"),
    ("read int id", lambda c: c.read_task_run(12), TypeError, "task_run_id must be a UUID"),
    ("read None id", lambda c: c.read_task_run(None), TypeError, "task_run_id"),
    ("states bad id", lambda c: c.read_task_run_states("nope"), ValueError, "task_run_id"),
    ("rename bad id", lambda c: c.set_task_run_name("nope", "n"), ValueError, "task_run_id"),
    ("set state bad id", lambda c: c.set_task_run_state(b"\x00", Running()), TypeError, "task_run_id"),
    # names
    ("rename int", lambda c: c.set_task_run_name(ID, 5), TypeError, "name must be a str"),
    ("rename over-long", lambda c: c.set_task_run_name(ID, LONG), ValueError, "2001 bytes long; the limit is 2000"),
    ("rename over-long multibyte", lambda c: c.set_task_run_name(ID, "é" * 1001), ValueError, "2002 bytes"),
    ("create over-long name", lambda c: c.create_task_run(Task(name="t"), None, "0", name=LONG), ValueError, "name is 2001 bytes"),
    ("create over-long key", lambda c: c.create_task_run(Task(name="t", task_key="k" * 1001), None, "0"), ValueError, "task.task_key is 1001 bytes"),
    ("create over-long dynamic key", lambda c: c.create_task_run(Task(name="t"), None, "d" * 1001), ValueError, "dynamic_key is 1001 bytes"),
    # create_task_run
    ("create no task", lambda c: c.create_task_run(None, None, "0"), TypeError, "task must be"),
    ("create bad flow run", lambda c: c.create_task_run(Task(name="t"), 7, "0"), TypeError, "flow_run_id"),
    ("create bad state", lambda c: c.create_task_run(Task(name="t"), None, "0", state={"type": "RUNNING"}), TypeError, "state must be a State"),
    ("create unknown state type", lambda c: c.create_task_run(Task(name="t"), None, "0", state=bad_state()), ValueError, "Invalid enum value 'EXPLODED' - at `$.state.type`"),
    ("create bad tags", lambda c: c.create_task_run(Task(name="t", tags="abc"), None, "0"), TypeError, "task.tags must be a collection"),  # type: ignore[arg-type]
    ("create bad version", lambda c: c.create_task_run(Task(name="t", version=1), None, "0"), TypeError, "task.version"),  # type: ignore[arg-type]
    ("create bad retries", lambda c: c.create_task_run(Task(name="t", retries="3"), None, "0"), TypeError, "task.retries must be an int"),  # type: ignore[arg-type]
    ("create negative delay", lambda c: c.create_task_run(Task(name="t", retry_delay_seconds=-1), None, "0"), ValueError, ">= 0"),
    ("create bad inputs", lambda c: c.create_task_run(Task(name="t"), None, "0", task_inputs={"x": "y"}), ValueError, "task_inputs"),
    ("create bad state details", lambda c: c.create_task_run(Task(name="t"), None, "0", state=naive_tags_state()), ValueError, "run_input_keyset"),
    # set_task_run_state
    ("set state str", lambda c: c.set_task_run_state(ID, "COMPLETED"), TypeError, "state must be a State"),
    ("set state type str", lambda c: c.set_task_run_state(ID, StateType.COMPLETED), TypeError, "state must be a State"),
    ("set state unknown type", lambda c: c.set_task_run_state(ID, bad_state()), ValueError, "Invalid enum value 'EXPLODED'"),
    ("set state force str", lambda c: c.set_task_run_state(ID, Completed(), force="yes"), TypeError, "force must be a bool"),
    ("set state unserialisable message", lambda c: c.set_task_run_state(ID, unserialisable_state()), TypeError, "cannot be sent as JSON"),
    # read_task_runs
    ("filter wrong class", lambda c: c.read_task_runs(flow_filter=TaskRunFilter()), TypeError, "flow_filter must be a FlowFilter"),
    ("filter dict", lambda c: c.read_task_runs(task_run_filter={"id": None}), TypeError, "task_run_filter must be a TaskRunFilter"),
    ("filter deep bad uuid", lambda c: c.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=["zz"]))), ValueError, "FlowRunFilterId.any_ must hold UUIDs"),
    ("filter deep bad type", lambda c: c.read_task_runs(task_run_filter=TaskRunFilter(tags=TaskRunFilterTags(all_="a"))), TypeError, "$.task_runs.tags.all_"),
    ("filter deep bad date", lambda c: c.read_task_runs(task_run_filter=TaskRunFilter(start_time=TaskRunFilterStartTime(after_="yesterday"))), ValueError, "TaskRunFilterStartTime.after_ must be a datetime or an ISO-8601 string"),
    ("filter bad operator", lambda c: c.read_task_runs(flow_filter=FlowFilter(operator="xor_")), ValueError, "$.flows.operator"),
    ("limit negative", lambda c: c.read_task_runs(limit=-1), ValueError, "limit must be >= 0"),
    ("limit float", lambda c: c.read_task_runs(limit=2.5), TypeError, "limit must be an int"),
    ("offset negative", lambda c: c.read_task_runs(offset=-1), ValueError, "offset must be >= 0"),
    ("offset str", lambda c: c.read_task_runs(offset="1"), TypeError, "offset must be an int"),
    ("sort unknown", lambda c: c.read_task_runs(sort="RANDOM"), ValueError, "sort must be one of"),
    ("sort int", lambda c: c.read_task_runs(sort=1), TypeError, "sort must be a TaskRunSort"),
]  # fmt: skip


@pytest.mark.parametrize("call, error, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_before_any_request(mocked: responses.RequestsMock, call: Any,
                                            error: type, message: str) -> None:
    client = SyncPrefectClient(API)
    with pytest.raises(error) as caught:
        call(client)
    assert message in str(caught.value)
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("build, error, message", [
    (lambda: SyncPrefectClient(42), TypeError, "URL string or an ASGI application"),
    (lambda: SyncPrefectClient("ftp://x/api"), ValueError, "must start with http"),
    (lambda: SyncPrefectClient(API, api_key=123), TypeError, "api_key must be a str"),
    (lambda: SyncPrefectClient(API, httpx_settings={"retries": 3}), TypeError, "'retries'"),
    (lambda: get_client(httpx_settings="timeout=3"), TypeError, "httpx_settings must be a mapping"),
    (lambda: Task(name=""), ValueError, "non-empty"),
    (lambda: Scheduled(scheduled_time="tomorrow"), ValueError, "scheduled_time must be an ISO-8601 datetime"),
    (lambda: Scheduled(scheduled_time=3.5), TypeError, "scheduled_time must be a datetime"),
    (lambda: Scheduled(scheduled_time=datetime.datetime.now(), state_details={"scheduled_time": datetime.datetime.now()}), ValueError, "extra scheduled_time"),
    (lambda: Paused(timeout_seconds=5, pause_expiration_time=datetime.datetime.now()), ValueError, "both"),
    (lambda: Running(state_details={"flow_run_id": "x"}), ValueError, "invalid state_details"),
    (lambda: Running(state_details=[1]), TypeError, "state_details must be"),
    (lambda: Running(name=3), TypeError, "state name must be a str"),
])  # fmt: skip
def test_bad_construction(mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch,
                          build: Callable[[], Any], error: type, message: str) -> None:
    monkeypatch.setenv("PREFECT_API_URL", API)
    with pytest.raises(error, match=None) as caught:
        build()
    assert message in str(caught.value)
    assert len(mocked.calls) == 0
