"""What each member sends (method, path, query, JSON body, headers) and how it decodes the
server's real replies (captured in tests/fixtures). HTTP is faked with ``responses``."""

import datetime
import json
import uuid
from typing import Any, Callable, Dict, Iterator, List

import pytest
import responses

from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import (
    ObjectNotFound,
    PrefectHTTPStatusError,
    RequestValidationError,
    ResponseDecodeError,
)
from orchestration_client.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
    TaskRunFilterStartTime,
    TaskRunFilterState,
    TaskRunFilterStateType,
)
from orchestration_client.schemas import (
    Constant,
    FlowRunResult,
    Parameter,
    SetStateStatus,
    StateAbortDetails,
    StateRejectDetails,
    StateType,
    StateWaitDetails,
    Task,
    TaskRunResult,
)
from orchestration_client.sorting import TaskRunSort
from orchestration_client.states import Completed, Pending, Running

API = "http://prefect.test/api"
RUN_ID = uuid.UUID("1c704402-4756-47e2-ab3f-a88f80551268")
FLOW_RUN_ID = uuid.UUID("00000000-0000-0000-0000-000000000001")

EMPTY_DETAILS = {
    "flow_run_id": None, "task_run_id": None, "child_flow_run_id": None,
    "scheduled_time": None, "cache_key": None, "cache_expiration": None, "deferred": None,
    "untrackable_result": False, "pause_timeout": None, "pause_reschedule": False,
    "pause_key": None, "run_input_keyset": None, "refresh_cache": None, "retriable": None,
    "transition_id": None, "task_parameters_id": None, "traceparent": None,
    "deployment_concurrency_lease_id": None,
}  # fmt: skip


def state_body(type_: str, name: str, **details: Any) -> Dict[str, Any]:
    """A state as sent: ``message`` and ``data`` are omitted while None (server defaults)."""
    return {"type": type_, "name": name, "state_details": {**EMPTY_DETAILS, **details}}


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{API}/csrf-token", status=422, json={"detail": "CSRF protection is disabled."})
        yield mock


@pytest.fixture
def client() -> SyncPrefectClient:
    return SyncPrefectClient(API)


def sent(mock: responses.RequestsMock, index: int = -1) -> Any:
    return mock.calls[index].request


def body(mock: responses.RequestsMock, index: int = -1) -> Any:
    return json.loads(sent(mock, index).body)


# ---- headers ------------------------------------------------------------------------------


def test_every_request_carries_prefect_headers(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API}/hello", json="👋")
    SyncPrefectClient(API, api_key="pnu_key").hello()
    headers = sent(mocked).headers
    assert headers["Authorization"] == "Bearer pnu_key"
    assert headers["X-PREFECT-API-VERSION"] == "0.8.4"
    assert headers["User-Agent"].startswith("orchestration_client/")
    assert "gzip" in headers["Accept-Encoding"]


def test_auth_string_wins_over_api_key(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API}/hello", json="👋")
    SyncPrefectClient(API, api_key="k", auth_string="admin:pa:ss").hello()
    assert sent(mocked).headers["Authorization"] == "Basic YWRtaW46cGE6c3M="


def test_api_version_override(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API}/hello", json="👋")
    SyncPrefectClient(API, api_version="0.8.1").hello()
    assert sent(mocked).headers["X-PREFECT-API-VERSION"] == "0.8.1"


# ---- server and versions ---------------------------------------------------------------------


def test_health_hello_version_paths(
    mocked: responses.RequestsMock, client: SyncPrefectClient
) -> None:
    mocked.get(f"{API}/health", json=True)
    mocked.get(f"{API}/hello", json="👋")
    mocked.get(f"{API}/admin/version", json="3.9.1")
    assert client.api_healthcheck() is None
    assert client.hello().json() == "👋"
    assert client.api_version() == "3.9.1"
    assert [(c.request.method, c.request.url) for c in mocked.calls] == [
        ("GET", f"{API}/health"),
        ("GET", f"{API}/hello"),
        ("GET", f"{API}/admin/version"),
    ]


def test_healthcheck_returns_status_errors(
    mocked: responses.RequestsMock, client: SyncPrefectClient
) -> None:
    mocked.get(f"{API}/health", status=500, json={"exception_message": "Internal Server Error"})
    error = client.api_healthcheck()
    assert isinstance(error, PrefectHTTPStatusError) and error.status_code == 500


def test_version_check_reraises_unauthorized(
    mocked: responses.RequestsMock, client: SyncPrefectClient
) -> None:
    mocked.get(f"{API}/admin/version", status=401, json={"exception_message": "Unauthorized"})
    with pytest.raises(PrefectHTTPStatusError, match="401"):
        client.raise_for_api_version_mismatch()


def test_version_check_skips_cloud(mocked: responses.RequestsMock) -> None:
    cloud = SyncPrefectClient("https://api.prefect.cloud/api/accounts/a/workspaces/w")
    cloud.raise_for_api_version_mismatch()
    assert len(mocked.calls) == 0


def test_version_check_rejects_unparseable(
    mocked: responses.RequestsMock, client: SyncPrefectClient
) -> None:
    mocked.get(f"{API}/admin/version", json="banana")
    with pytest.raises(ValueError, match="not a PEP 440 version"):
        client.raise_for_api_version_mismatch()


# ---- create_task_run ---------------------------------------------------------------------------


def test_create_minimal_body(
    mocked: responses.RequestsMock, client: SyncPrefectClient, fixture_bytes: Callable[[str], bytes]
) -> None:
    mocked.post(f"{API}/task_runs/", body=fixture_bytes("task_run_created"), status=201)
    run = client.create_task_run(Task(name="load"), None, 0)
    reply = json.loads(fixture_bytes("task_run_created"))
    request = sent(mocked)
    assert request.method == "POST" and request.url == f"{API}/task_runs/"
    assert request.headers["Content-Type"] == "application/json"
    # Only what was set: no null name/flow_run_id/cache fields, no empty tags, labels or
    # task_inputs (a 3.0 server refuses "labels"); the server's defaults are the same.
    assert body(mocked) == {
        "state": state_body("PENDING", "Pending"),
        "task_key": Task(name="load").task_key, "dynamic_key": "0",
        "empirical_policy": {"max_retries": 0, "retry_delay_seconds": 0.0, "retries": 0,
                             "retry_delay": 0, "retry_jitter_factor": None},
    }  # fmt: skip
    assert "id" not in body(mocked)  # omitted entirely, not null
    assert run.id == uuid.UUID(reply["id"])


def test_create_full_body(
    mocked: responses.RequestsMock, client: SyncPrefectClient, fixture_bytes: Callable[[str], bytes]
) -> None:
    mocked.post(f"{API}/task_runs/", body=fixture_bytes("task_run_created"), status=201)
    other = uuid.UUID(int=7)
    task = Task(
        name="my_task",
        task_key="my_task-70388178",
        tags=["a", "x"],
        version="1.0",
        retries=2,
        retry_delay_seconds=[1.5, 3],
        retry_jitter_factor=0.5,
    )
    client.create_task_run(
        task,
        str(FLOW_RUN_ID),
        "0",
        id=RUN_ID,
        name="nm",
        extra_tags=["x", "b"],
        state=Running(message="m"),
        task_inputs={
            "x": [
                TaskRunResult(id=other),
                Parameter(name="p"),
                Constant(type="int"),
                FlowRunResult(id=other),
            ]
        },
    )
    assert body(mocked) == {
        "id": str(RUN_ID),
        "state": {**state_body("RUNNING", "Running"), "message": "m"},
        "name": "nm", "flow_run_id": str(FLOW_RUN_ID), "task_key": "my_task-70388178",
        "dynamic_key": "0", "task_version": "1.0",
        "empirical_policy": {"max_retries": 0, "retry_delay_seconds": 0.0, "retries": 2,
                             "retry_delay": [1, 3], "retry_jitter_factor": 0.5},
        "tags": ["a", "x", "b"],
        "task_inputs": {"x": [{"input_type": "task_run", "id": str(other)},
                              {"input_type": "parameter", "name": "p"},
                              {"input_type": "constant", "type": "int"},
                              {"input_type": "flow_run", "id": str(other)}]},
    }  # fmt: skip


def test_create_accepts_any_task_like_object(
    mocked: responses.RequestsMock, client: SyncPrefectClient, fixture_bytes: Callable[[str], bytes]
) -> None:
    class Duck:
        task_key, tags, version = "duck-1", {"q"}, None
        retries, retry_delay_seconds, retry_jitter_factor = 0, 2.9, None

    mocked.post(f"{API}/task_runs/", body=fixture_bytes("task_run_created"), status=201)
    client.create_task_run(Duck(), None, "k")
    assert body(mocked)["task_key"] == "duck-1" and body(mocked)["tags"] == ["q"]
    assert body(mocked)["empirical_policy"]["retry_delay"] == 2


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda c: c.create_task_run(object(), None, "0"), TypeError, "must be an orchestration_client.schemas.Task"),
        (lambda c: c.create_task_run(Task(name="t"), "xyz", "0"), ValueError, "flow_run_id must be a UUID"),
        (lambda c: c.create_task_run(Task(name="t"), None, "0", id=5), TypeError, "id must be a UUID"),
        (lambda c: c.create_task_run(Task(name="t"), None, "0", name=3), TypeError, "name must be a str"),
        (lambda c: c.create_task_run(Task(name="t"), None, "0", extra_tags="abc"), TypeError, "extra_tags must be a collection"),
        (lambda c: c.create_task_run(Task(name="t"), None, "0", extra_tags=[1]), TypeError, "extra_tags must contain only str"),
        (lambda c: c.create_task_run(Task(name="t"), None, "0", state="PENDING"), TypeError, "state must be a State"),
        (lambda c: c.create_task_run(Task(name="t", retries=-1), None, "0"), ValueError, "task.retries must be >= 0"),
        (lambda c: c.create_task_run(Task(name="t", retry_delay_seconds=[1] * 51), None, "0"), ValueError, "at most 50"),
        (lambda c: c.create_task_run(Task(name="t", retry_delay_seconds=float("nan")), None, "0"), ValueError, "finite"),
        (lambda c: c.create_task_run(Task(name="t"), None, "0", task_inputs={"x": [1]}), RequestValidationError, r"got `int` - at `\$\.task_inputs\[...\]\[0\]`"),
        (lambda c: c.create_task_run(Task(name="t"), None, "0", task_inputs=[]), TypeError, "task_inputs must be a dict"),
    ],
)  # fmt: skip
def test_create_rejects_bad_input_before_sending(
    mocked: responses.RequestsMock, client: SyncPrefectClient, call: Any, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        call(client)
    assert len(mocked.calls) == 0


def test_task_validates_itself() -> None:
    with pytest.raises(ValueError, match="non-empty str"):
        Task(name="")
    with pytest.raises(ValueError, match="finite"):
        Task(name="t", retry_jitter_factor=float("inf"))
    assert Task(name="t").task_key == Task(name="t").task_key != Task(name="u").task_key
    assert Task(name="t", task_key="own").task_key == "own"


# ---- read_task_run(s) -------------------------------------------------------------------------


def test_read_task_run_path_and_decoding(
    mocked: responses.RequestsMock, client: SyncPrefectClient, fixture_bytes: Callable[[str], bytes]
) -> None:
    mocked.get(f"{API}/task_runs/{RUN_ID}", body=fixture_bytes("task_run_created"))
    run = client.read_task_run(str(RUN_ID).upper())
    assert sent(mocked).url == f"{API}/task_runs/{RUN_ID}"
    reply = json.loads(fixture_bytes("task_run_created"))
    assert run.id == uuid.UUID(reply["id"]) and run.name == reply["name"]
    assert run.created == datetime.datetime.fromisoformat(reply["created"].replace("Z", "+00:00"))
    assert run.created.tzinfo is not None
    assert run.estimated_start_time_delta == datetime.timedelta(
        seconds=reply["estimated_start_time_delta"]
    )
    assert run.empirical_policy.retry_delay == [1, 3]
    assert run.task_inputs["x"][2] == FlowRunResult(id=uuid.UUID(reply["flow_run_id"]))
    assert run.state is not None and run.state.id == run.state_id
    assert run.state.state_details.deferred is False
    assert run.labels == reply["labels"]


def test_read_task_run_404(mocked: responses.RequestsMock, client: SyncPrefectClient) -> None:
    mocked.get(f"{API}/task_runs/{RUN_ID}", status=404, json={"detail": "Task not found"})
    with pytest.raises(ObjectNotFound) as caught:
        client.read_task_run(RUN_ID)
    assert str(caught.value) == (
        f"Client error '404 Not Found' for GET {API}/task_runs/{RUN_ID} "
        '- Response: {"detail": "Task not found"}'
    )
    assert caught.value.detail == {"detail": "Task not found"}


def test_read_task_runs_worked_body(
    mocked: responses.RequestsMock, client: SyncPrefectClient, fixture_bytes: Callable[[str], bytes]
) -> None:
    """The wire reference's worked example (section 7.4), sent as we send it: only what the
    caller set (the reference's nulls and defaults are the server's defaults)."""
    mocked.post(f"{API}/task_runs/filter", body=fixture_bytes("task_runs_filter"))
    x, y = uuid.UUID(int=1), uuid.UUID(int=2)
    runs = client.read_task_runs(
        task_run_filter=TaskRunFilter(
            state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.COMPLETED])),
            flow_run_id=TaskRunFilterFlowRunId(any_=[x]),
            start_time=TaskRunFilterStartTime(
                after_=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
            ),
        ),
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[y])),
        sort=TaskRunSort.NAME_ASC,
        limit=10,
    )
    assert sent(mocked).url == f"{API}/task_runs/filter"
    assert body(mocked) == {
        "flow_runs": {"id": {"any_": [str(y)]}},
        "task_runs": {"state": {"type": {"any_": ["COMPLETED"]}},
                      "start_time": {"after_": "2026-01-01T00:00:00Z"},
                      "flow_run_id": {"any_": [str(x)]}},
        "sort": "NAME_ASC", "limit": 10,
    }  # fmt: skip
    assert [run.id for run in runs] == [
        uuid.UUID(r["id"]) for r in json.loads(fixture_bytes("task_runs_filter"))
    ]


def test_read_task_runs_defaults(mocked: responses.RequestsMock, client: SyncPrefectClient) -> None:
    mocked.post(f"{API}/task_runs/filter", json=[])
    assert client.read_task_runs() == []
    # Every key is the server's default (FastAPI reads a missing key as its default).
    assert body(mocked) == {}
    assert client.read_task_runs(offset=None, limit=None, sort=None) == []
    assert body(mocked) == {}
    client.read_task_runs(offset=3)
    assert body(mocked) == {"offset": 3}



def test_read_task_run_states(
    mocked: responses.RequestsMock, client: SyncPrefectClient, fixture_bytes: Callable[[str], bytes]
) -> None:
    mocked.get(f"{API}/task_run_states/", body=fixture_bytes("task_run_states"))
    states = client.read_task_run_states(RUN_ID)
    assert sent(mocked).url == f"{API}/task_run_states/?task_run_id={RUN_ID}"
    assert [s.name for s in states] == [
        s["name"] for s in json.loads(fixture_bytes("task_run_states"))
    ]


# ---- set_task_run_name / set_task_run_state ---------------------------------------------------


def test_set_task_run_name(mocked: responses.RequestsMock, client: SyncPrefectClient) -> None:
    mocked.patch(f"{API}/task_runs/{RUN_ID}", status=204)
    reply = client.set_task_run_name(RUN_ID, "new")
    assert reply.status_code == 204
    assert (sent(mocked).method, body(mocked)) == ("PATCH", {"name": "new"})
    client.set_task_run_name(RUN_ID, None)
    assert body(mocked) == {"name": None}
    # CSRF is probed once, on the first mutating call, then switched off.
    assert [c.request.method for c in mocked.calls] == ["GET", "PATCH", "PATCH"]


def test_set_state_body_and_side_effect(
    mocked: responses.RequestsMock, client: SyncPrefectClient, fixture_bytes: Callable[[str], bytes]
) -> None:
    mocked.post(
        f"{API}/task_runs/{RUN_ID}/set_state", body=fixture_bytes("result_accept"), status=201
    )
    state = Completed(message="done")
    result = client.set_task_run_state(RUN_ID, state, force=True)
    sent_body = body(mocked)
    stamp = sent_body["state"]["state_details"].pop("transition_id")  # fresh per proposal
    assert uuid.UUID(stamp).version == 4 and state.state_details.transition_id is None
    sent_body["state"]["state_details"]["transition_id"] = None
    assert sent_body == {
        "state": {
            **state_body("COMPLETED", "Completed", task_run_id=str(RUN_ID)),
            "message": "done",
        },
        "force": True,
    }
    assert state.state_details.task_run_id == RUN_ID
    assert result.status == SetStateStatus.ACCEPT


@pytest.mark.parametrize(
    "fixture, status, details",
    [
        ("result_reject", SetStateStatus.REJECT, StateRejectDetails),
        ("result_wait", SetStateStatus.WAIT, StateWaitDetails),
        ("result_abort", SetStateStatus.ABORT, StateAbortDetails),
    ],
)
def test_orchestration_results_decode(
    mocked: responses.RequestsMock,
    client: SyncPrefectClient,
    fixture_bytes: Callable[[str], bytes],
    fixture: str,
    status: SetStateStatus,
    details: type,
) -> None:
    mocked.post(f"{API}/task_runs/{RUN_ID}/set_state", body=fixture_bytes(fixture))
    result = client.set_task_run_state(RUN_ID, Pending())
    reply = json.loads(fixture_bytes(fixture))
    assert result.status == status and isinstance(result.details, details)
    assert result.details.reason == reply["details"]["reason"]  # type: ignore[union-attr]
    assert result.state is not None and result.state.name == reply["state"]["name"]


# ---- malformed replies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, fragment",
    [
        (b"", "an empty body"),
        (b"<html><body>Bad gateway</body></html>", "b'<html>"),
        (b'{"id": "1c704402-4756-47e2-ab3f-a88f80551268", "name": "x"', "truncated"),
        (b'{"id": 5, "name": "x", "task_key": "k", "dynamic_key": "0"}', "$.id"),
        (
            b'{"id": "1c704402-4756-47e2-ab3f-a88f80551268", "task_key": "k", "dynamic_key": "0"}',
            "missing required field `name`",
        ),
        (
            b'{"id": "1c704402-4756-47e2-ab3f-a88f80551268", "name": "x", "task_key": "k", '
            b'"dynamic_key": "0", "state_type": "EXPLODED"}',
            "$.state_type",
        ),
    ],
)
def test_malformed_replies_name_the_endpoint(
    mocked: responses.RequestsMock, client: SyncPrefectClient, reply: bytes, fragment: str
) -> None:
    mocked.get(f"{API}/task_runs/{RUN_ID}", body=reply, status=200)
    with pytest.raises(ResponseDecodeError) as caught:
        client.read_task_run(RUN_ID)
    message = str(caught.value)
    assert message.startswith(f"GET /api/task_runs/{RUN_ID} answered 200")
    assert "TaskRun" in message and fragment in message
    assert caught.value.endpoint == f"GET /api/task_runs/{RUN_ID}"


def test_newer_server_fields_are_ignored(
    mocked: responses.RequestsMock, client: SyncPrefectClient, fixture_bytes: Callable[[str], bytes]
) -> None:
    reply: Dict[str, Any] = json.loads(fixture_bytes("task_run_created"))
    reply["brand_new_field"] = {"nested": [1, 2]}
    reply["state"]["state_details"]["another_new_one"] = True
    mocked.get(f"{API}/task_runs/{RUN_ID}", json=reply)
    assert client.read_task_run(RUN_ID).id == uuid.UUID(reply["id"])


def test_null_labels_become_empty(
    mocked: responses.RequestsMock, client: SyncPrefectClient, fixture_bytes: Callable[[str], bytes]
) -> None:
    reply: Dict[str, Any] = json.loads(fixture_bytes("task_run_created"))
    reply["labels"] = None
    mocked.get(f"{API}/task_runs/{RUN_ID}", json=reply)
    assert client.read_task_run(RUN_ID).labels == {}


def test_list_reply_that_is_not_a_list(
    mocked: responses.RequestsMock, client: SyncPrefectClient
) -> None:
    mocked.post(f"{API}/task_runs/filter", json={"detail": "oops"})
    with pytest.raises(ResponseDecodeError, match=r"POST /api/task_runs/filter .*list of TaskRun"):
        client.read_task_runs()


def _unused(_: List[Any]) -> None:  # keep imports honest for linters
    _ = Completed
