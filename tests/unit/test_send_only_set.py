"""Bodies carry only what the caller set; filters coerce what Prefect's coerce; a 422 that
refuses a feature the server is too old for becomes ``FeatureNotSupported``.

The same behaviour on real servers of every release, and the check that every default we
omit is the server's own, are in ``tests/compat``."""

import datetime
import json
import uuid
from typing import Any, Dict, Iterator

import msgspec
import pytest
import responses

from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import (
    FeatureNotSupported,
    PrefectHTTPStatusError,
    RequestValidationError,
)
from orchestration_client.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterStartTime,
    Operator,
    TaskRunFilter,
    TaskRunFilterEndTime,
    TaskRunFilterFlowRunId,
)
from orchestration_client.schemas import FlowRunResult, Task
from orchestration_client.sorting import TaskRunSort

API = "http://prefect.test/api"
ID = "56b46a9a-eb09-4fbb-847d-c7c0fc0eb24d"
UTC = datetime.timezone.utc


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{API}/csrf-token", status=422, json={"detail": "CSRF protection is disabled."})
        yield mock


@pytest.fixture
def client() -> SyncPrefectClient:
    return SyncPrefectClient(API)


def last_body(mocked: responses.RequestsMock) -> Any:
    return json.loads(mocked.calls[-1].request.body)


# ---- only what was set --------------------------------------------------------------------------


def test_explicit_defaults_mean_the_same_as_the_server_default(
    mocked: responses.RequestsMock, client: SyncPrefectClient
) -> None:
    """A field set to its default is omitted and the server fills in the same default, so
    the filter means exactly what the caller wrote; any other value is sent."""
    mocked.post(f"{API}/task_runs/filter", json=[])
    client.read_task_runs(
        task_run_filter=TaskRunFilter(
            operator=Operator.and_, flow_run_id=TaskRunFilterFlowRunId(is_null_=False)
        ),
        flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(is_null_=False)),
    )
    assert last_body(mocked) == {
        "flow_runs": {"start_time": {"is_null_": False}},
        "task_runs": {"flow_run_id": {}},
    }
    client.read_task_runs(
        task_run_filter=TaskRunFilter(
            operator=Operator.or_, flow_run_id=TaskRunFilterFlowRunId(is_null_=True)
        )
    )
    assert last_body(mocked) == {
        "task_runs": {"operator": "or_", "flow_run_id": {"is_null_": True}}
    }


def test_create_sends_no_empty_labels_tags_or_inputs(
    mocked: responses.RequestsMock, client: SyncPrefectClient, fixture_bytes: Any
) -> None:
    mocked.post(f"{API}/task_runs/", body=fixture_bytes("task_run_created"), status=201)
    client.create_task_run(Task(name="t"), None, 0)
    sent = last_body(mocked)
    assert not {"labels", "tags", "task_inputs", "name", "flow_run_id", "id"} & set(sent)
    assert set(sent["state"]) == {"type", "name", "state_details"}


# ---- what Prefect's filters coerce -------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-01-02T03:04:05Z", datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05+02:00", datetime.datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)),
        ("2026-01-02 03:04:05+02:00", datetime.datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05", datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02", datetime.datetime(2026, 1, 2, tzinfo=UTC)),
    ],
)
def test_filters_take_iso_8601_strings(text: str, expected: datetime.datetime) -> None:
    """As in Prefect, a string becomes a datetime when the filter is built, and one
    without an offset means UTC."""
    after = FlowRunFilterStartTime(after_=text).after_
    assert isinstance(after, datetime.datetime) and after == expected
    assert after.utcoffset() is not None


def test_filters_take_str_ids() -> None:
    ids = FlowRunFilterId(any_=[ID, uuid.UUID(int=1)], not_any_=[ID.upper()])
    assert ids.any_ == [uuid.UUID(ID), uuid.UUID(int=1)]
    assert ids.not_any_ == [uuid.UUID(ID)]
    assert DeploymentFilterId(not_any_=(ID,)).not_any_ == [uuid.UUID(ID)]


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: FlowRunFilterStartTime(before_="next tuesday"),
         "FlowRunFilterStartTime.before_ must be a datetime or an ISO-8601 string, got 'next tuesday'"),
        (lambda: TaskRunFilterEndTime(after_="2026-13-01"), "TaskRunFilterEndTime.after_"),
        (lambda: FlowRunFilterId(any_=[ID, "not-a-uuid"]),
         "FlowRunFilterId.any_ must hold UUIDs or UUID strings, got 'not-a-uuid'"),
    ],
)  # fmt: skip
def test_bad_strings_name_the_field(build: Any, message: str) -> None:
    with pytest.raises(RequestValidationError, match=message.replace(".", r"\.")):
        build()


def test_unknown_filter_keywords_stay_a_type_error() -> None:
    """Stricter than Prefect on purpose: a typo must not silently match everything."""
    with pytest.raises(TypeError, match="any"):
        FlowRunFilterId(anyy_=[ID])  # type: ignore[call-arg]


def test_offset_none_means_zero(mocked: responses.RequestsMock, client: SyncPrefectClient) -> None:
    mocked.post(f"{API}/task_runs/filter", json=[])
    assert client.read_task_runs(offset=None) == []
    assert last_body(mocked) == {}


def test_filters_still_decode_and_encode_round_trip() -> None:
    """Coercion runs on decoding too, where values are already typed: nothing changes."""
    original = FlowRunFilter(
        id=FlowRunFilterId(any_=[ID]), start_time=FlowRunFilterStartTime(after_="2026-01-02")
    )
    data = msgspec.json.encode(original)
    assert msgspec.json.decode(data, type=FlowRunFilter) == original


# ---- features an old server lacks ----------------------------------------------------------


def refusal(*errors: Dict[str, Any]) -> Dict[str, Any]:
    """A 422 body in the shape Prefect servers send (captured from a 3.0.11 server)."""
    return {"exception_message": "Invalid request received.", "exception_detail": list(errors),
            "request_body": {}}  # fmt: skip


END_TIME = {"type": "extra_forbidden", "loc": ["body", "task_runs", "end_time"],
            "msg": "Extra inputs are not permitted", "input": {"is_null_": True}}  # fmt: skip
NOT_ANY = {"type": "extra_forbidden", "loc": ["body", "deployments", "id", "not_any_"],
           "msg": "Extra inputs are not permitted", "input": []}  # fmt: skip
DURATION = {"type": "enum", "loc": ["body", "sort"], "msg": "Input should be 'ID_DESC', ...",
            "input": "DURATION_ASC"}  # fmt: skip
FLOW_RUN_INPUT = {"type": "literal_error", "loc": ["body", "task_inputs", "x", 0, "TaskRunResult",
                  "input_type"], "msg": "Input should be 'task_run'", "input": "flow_run"}  # fmt: skip


def test_feature_error_names_feature_versions_and_keeps_the_http_error(
    mocked: responses.RequestsMock, client: SyncPrefectClient
) -> None:
    mocked.get(f"{API}/admin/version", json="3.0.11")
    mocked.post(f"{API}/task_runs/filter", status=422, json=refusal(END_TIME, NOT_ANY))
    assert client.api_version() == "3.0.11"
    with pytest.raises(FeatureNotSupported) as caught:
        client.read_task_runs(
            task_run_filter=TaskRunFilter(end_time=TaskRunFilterEndTime(is_null_=True)),
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(not_any_=[])),
        )
    error = caught.value
    assert isinstance(error, PrefectHTTPStatusError) and error.status_code == 422
    assert error.feature == "DeploymentFilterId.not_any_"
    assert error.features == [("DeploymentFilterId.not_any_", "3.4"),
                              ("the TaskRunFilter.end_time filter", "3.6")]  # fmt: skip
    assert error.minimum_version == "3.6" and error.server_version == "3.0.11"
    message = str(error)
    assert "TaskRunFilter.end_time filter needs Prefect 3.6 or later" in message
    assert "this server runs Prefect 3.0.11" in message and "422" in message
    # The version was already known: nothing was asked after the refusal.
    assert [c.request.url.split("?")[0] for c in mocked.calls] == [
        f"{API}/admin/version",
        f"{API}/csrf-token",
        f"{API}/task_runs/filter",
    ]


def test_unknown_version_is_asked_once_only_after_a_refusal(
    mocked: responses.RequestsMock, client: SyncPrefectClient, fixture_bytes: Any
) -> None:
    version = mocked.get(f"{API}/admin/version", json="3.3.7")
    mocked.post(f"{API}/task_runs/", status=422, json=refusal(FLOW_RUN_INPUT))
    mocked.post(f"{API}/task_runs/filter", status=422, json=refusal(DURATION))
    for _ in range(2):
        with pytest.raises(
            FeatureNotSupported, match=r"a FlowRunResult task input needs Prefect 3\.4"
        ):
            client.create_task_run(
                Task(name="t"), None, 0, task_inputs={"x": [FlowRunResult(id=ID)]}
            )
    with pytest.raises(
        FeatureNotSupported,
        match=r"DURATION_DESC task-run sorts needs Prefect 3\.9.*runs Prefect 3\.3\.7",
    ):
        client.read_task_runs(sort=TaskRunSort.DURATION_ASC)
    assert version.call_count == 1


def test_version_unreachable_still_names_the_feature(
    mocked: responses.RequestsMock, client: SyncPrefectClient
) -> None:
    mocked.get(f"{API}/admin/version", status=404, json={"detail": "Not Found"})
    mocked.post(f"{API}/task_runs/filter", status=422, json=refusal(END_TIME))
    with pytest.raises(FeatureNotSupported, match="server's version is unknown") as caught:
        client.read_task_runs(task_run_filter=TaskRunFilter(end_time=TaskRunFilterEndTime()))
    assert caught.value.server_version is None


def test_other_422s_stay_plain_http_errors(
    mocked: responses.RequestsMock, client: SyncPrefectClient
) -> None:
    """A refusal that names no feature, or names one the server's version has, is not
    blamed on the server's age."""
    mocked.get(f"{API}/admin/version", json="3.9.1")
    other = {"type": "missing", "loc": ["body", "task_key"], "msg": "Field required"}
    mocked.post(f"{API}/task_runs/filter", status=422, json=refusal(other))
    with pytest.raises(PrefectHTTPStatusError) as caught:
        client.read_task_runs()
    assert type(caught.value) is PrefectHTTPStatusError
    client.api_version()
    mocked.replace(responses.POST, f"{API}/task_runs/filter", status=422, json=refusal(END_TIME))
    with pytest.raises(PrefectHTTPStatusError) as caught:
        client.read_task_runs()
    assert type(caught.value) is PrefectHTTPStatusError
