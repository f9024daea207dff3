"""What of a state's data is sent: exactly what Prefect 3.9.1's ``to_state_create`` keeps
(a persisted Prefect result's metadata, nothing else), with the caller's state unchanged.
Also: nothing non-finite reaches a request body silently (issue 10, item 18)."""

import json
import math
import pathlib
import re
import uuid
from typing import Any, Iterator, List

import msgspec
import pytest
import responses
from support.helpers import installed_prefect, prefect_is_older

from orchestration_client import SyncPrefectClient
from orchestration_client._models._codec import BodyEncoder
from orchestration_client.exceptions import RequestValidationError
from orchestration_client.schemas import Task
from orchestration_client.states import Completed, Failed, Running

API = "http://prefect.test/api"
RUN_ID = uuid.UUID("1c704402-4756-47e2-ab3f-a88f80551268")
RESULT = {"state": None, "status": "ACCEPT", "details": {"type": "accept_details"}}


@pytest.fixture
def prefect(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Prefect itself, to compare with (the Python 3.9 run of the unit suite has none),
    imported with a throw-away PREFECT_HOME if this is its first import."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if prefect_is_older():  # Prefect 3.4's to_state_create even fails on its own there
        pytest.skip(f"compares with Prefect 3.9.1; Prefect {installed_prefect()} is installed")
    return pytest.importorskip("prefect")


class Custom:
    """A value only Python knows how to hold."""


DATA: List[Any] = [
    42,
    1.5,
    "text",
    [1, 2],
    {"rows": 3},
    ValueError("boom"),
    Custom(),
    float("nan"),
    float("inf"),
    {"storage_key": "s3://bucket/key", "serializer": {"type": "json"}},
    {"type": "unpersisted"},
    b"bytes",
    None,
]


@pytest.fixture
def sent() -> Iterator[List[Any]]:
    bodies: List[Any] = []
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(
            responses.GET,
            f"{API}/csrf-token",
            status=422,
            json={"detail": "CSRF protection is disabled."},
        )

        def record(request: Any, status: int, reply: Any) -> Any:
            bodies.append(json.loads(request.body))
            return status, {}, json.dumps(reply)

        mock.add_callback(
            responses.POST,
            f"{API}/task_runs/{RUN_ID}/set_state",
            callback=lambda r: record(r, 201, RESULT),
        )
        created = json.loads(
            (pathlib.Path(__file__).parents[1] / "fixtures" / "task_run_created.json").read_text()
        )
        mock.add_callback(
            responses.POST, f"{API}/task_runs/", callback=lambda r: record(r, 201, created)
        )
        yield bodies


def prefect_sends(data: Any) -> Any:
    import prefect.states

    return prefect.states.to_state_create(prefect.states.Completed(data=data)).model_dump(
        mode="json"
    )["data"]


@pytest.mark.parametrize("data", DATA, ids=[type(d).__name__ + repr(d)[:20] for d in DATA])
def test_data_is_sent_as_prefect_sends_it_and_kept_locally(
    prefect: Any, data: Any, sent: List[Any]
) -> None:
    client = SyncPrefectClient(API)
    state = Completed(data=data)
    client.set_task_run_state(RUN_ID, state)
    client.create_task_run(Task(name="t"), None, "0", state=Failed(data=data))
    # None is left out of the body (requests carry only what is set: see _bodies).
    assert "data" not in sent[0]["state"]
    assert "data" not in sent[1]["state"]
    assert prefect_sends(data) is None
    if data != {"type": "unpersisted"}:
        assert state.data is data  # the caller keeps it, as in Prefect


def persisted_record(persisted: bool) -> Any:
    from prefect._internal.result_records import ResultRecord, ResultRecordMetadata
    from prefect.serializers import JSONSerializer

    metadata = ResultRecordMetadata(storage_key="/results/abc", serializer=JSONSerializer())
    record = ResultRecord(metadata=metadata, result={"rows": 3})
    if persisted:
        record.mark_persisted()
    return record


@pytest.mark.parametrize("persisted", [True, False])
def test_a_prefect_result_record_sends_its_metadata_only_when_persisted(
    prefect: Any, persisted: bool, sent: List[Any]
) -> None:
    record = persisted_record(persisted)
    SyncPrefectClient(API).set_task_run_state(RUN_ID, Running(data=record))
    expected = prefect_sends(record)
    assert sent[0]["state"].get("data") == expected
    assert (expected is not None) == persisted
    if persisted:
        assert expected["storage_key"] == "/results/abc"
        assert expected["serializer"] == {"type": "json"}


def test_non_finite_numbers_never_reach_a_body_silently() -> None:
    class Body(msgspec.Struct):
        values: List[Any]

    encoder = BodyEncoder(Body)
    assert encoder.encode(Body(values=[1.5, {"a": 2.0}]), "body") == b'{"values":[1.5,{"a":2.0}]}'
    for bad, path in [(math.nan, "$.values[0]"), ({"a": [math.inf]}, "$.values[0].a[0]")]:
        with pytest.raises(RequestValidationError, match=re.escape(f"{path} is not a finite")):
            encoder.encode(Body(values=[bad]), "body")
    # msgspec alone writes null for them; that is what the guard is for.
    assert msgspec.json.encode([math.nan]) == b"[null]"


def test_bytes_never_reach_a_body_as_base64(sent: List[Any]) -> None:
    # msgspec would write b"int" as the text "aW50", which a str field accepts.
    from orchestration_client.schemas import Constant, Parameter

    client = SyncPrefectClient(API)
    for inputs in ({"x": [Constant(type=b"int")]}, {"x": [Parameter(name=bytearray(b"p"))]}):
        with pytest.raises(RequestValidationError, match=r"\$\.task_inputs\.x\[0\]\.\w+ is bytes"):
            client.create_task_run(Task(name="t"), None, "0", task_inputs=inputs)  # type: ignore[arg-type]
    assert sent == []
