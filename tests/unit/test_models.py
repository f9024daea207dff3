"""The object model user code touches behaves as Prefect 3.9.1's: pydantic-style helpers
with the same output as Prefect's models for the same JSON, State semantics (equality, hash,
repr, normalisation), the constructors, and tags readable as attributes.

Deliberate differences (README, migration guide): datetimes are stdlib ``datetime`` (Prefect
gives pendulum ``DateTime``, equal in value); a state's ``data`` that looks like result
metadata stays the dict the server sent (Prefect parses it into ``ResultRecordMetadata`` and
fills its defaults); ``model_copy(update=...)`` refuses unknown field names.
"""

import datetime
import enum
import json
import pathlib
import uuid
from typing import Any, Callable, Dict, List, Tuple

import msgspec
import pytest

from orchestration_client import schemas as ours
from orchestration_client import states as our_states

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures"
AT = datetime.datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=datetime.timezone.utc)
ID = uuid.UUID("0190c1e2-9a3b-7c4d-8e5f-0123456789ab")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def prefect(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Prefect itself, to compare with (the Python 3.9 run of the unit suite has none),
    imported with a throw-away PREFECT_HOME if this is its first import."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    return pytest.importorskip("prefect")


def prefect_models() -> Dict[str, Any]:
    from prefect.client.schemas import objects, responses

    return {
        "TaskRun": objects.TaskRun,
        "State": objects.State,
        "OrchestrationResult": responses.OrchestrationResult,
        "TaskRunPolicy": objects.TaskRunPolicy,
        "StateDetails": objects.StateDetails,
    }


def fixture_objects() -> List[Tuple[str, str, bytes]]:
    """(model name, case id, JSON) for every captured server reply, plus hand-made ones."""
    cases = [("TaskRun", "created", (FIXTURES / "task_run_created.json").read_bytes())]
    for index, run in enumerate(json.loads((FIXTURES / "task_runs_filter.json").read_bytes())):
        cases.append(("TaskRun", f"filter[{index}]", json.dumps(run).encode()))
    for index, state in enumerate(json.loads((FIXTURES / "task_run_states.json").read_bytes())):
        cases.append(("State", f"history[{index}]", json.dumps(state).encode()))
    for name in ("accept", "reject", "wait", "abort"):
        reply = (FIXTURES / f"result_{name}.json").read_bytes()
        cases.append(("OrchestrationResult", name, reply))
    every_input = json.loads((FIXTURES / "task_run_created.json").read_bytes())
    every_input["task_inputs"] = {
        "x": [{"input_type": "task_run", "id": str(ID)}, {"input_type": "parameter", "name": "p"}],
        "__parents__": [{"input_type": "flow_run", "id": str(ID)}],
        "y": [{"input_type": "constant", "type": "int"}],
    }
    every_input["total_run_time"] = 12.5
    every_input["estimated_start_time_delta"] = 86400.000001
    cases.append(("TaskRun", "every input kind", json.dumps(every_input).encode()))
    scheduled = {
        "id": str(ID),
        "type": "SCHEDULED",
        "name": "Late",
        "timestamp": "2026-01-02T03:04:05Z",
        "message": "late",
        "data": {"rows": 3, "values": [1.5, None, "x"]},
        "state_details": {"scheduled_time": "2026-01-02T03:04:05.123456+02:00"},
    }
    cases.append(("State", "data and offset", json.dumps(scheduled).encode()))
    cases.append(("TaskRunPolicy", "deprecated fields", b'{"max_retries": 2, "retries": 0}'))
    return cases


CASES = fixture_objects()


@pytest.mark.parametrize("model, case, raw", CASES, ids=[f"{m}-{c}" for m, c, _ in CASES])
def test_dumps_match_prefect_for_the_same_json(
    prefect: Any, model: str, case: str, raw: bytes
) -> None:
    mine = getattr(ours, model).model_validate_json(raw)
    theirs = prefect_models()[model].model_validate_json(raw)
    assert mine.model_dump() == theirs.model_dump()
    assert mine.model_dump(mode="json") == theirs.model_dump(mode="json")
    assert json.loads(mine.model_dump_json()) == json.loads(theirs.model_dump_json())
    assert mine.model_dump(exclude={"id"}, exclude_none=True) == theirs.model_dump(
        exclude={"id"}, exclude_none=True
    )
    assert mine.model_dump(include={"state"}) == theirs.model_dump(include={"state"})
    # Python-mode values keep their kinds: enum members, UUIDs, datetimes, timedeltas.
    for key, value in theirs.model_dump().items():
        for kind in (enum.Enum, uuid.UUID, datetime.datetime, datetime.timedelta, dict, list):
            assert isinstance(mine.model_dump()[key], kind) == isinstance(value, kind), key


@pytest.mark.parametrize("model, case, raw", CASES, ids=[f"{m}-{c}" for m, c, _ in CASES])
def test_validate_round_trips(model: str, case: str, raw: bytes) -> None:
    cls = getattr(ours, model)
    mine = cls.model_validate_json(raw)
    assert cls.model_validate(mine) is mine
    assert cls.model_validate(mine.model_dump()).model_dump() == mine.model_dump()
    assert cls.model_validate(mine.model_dump(mode="json")).model_dump() == mine.model_dump()
    assert cls.model_validate_json(mine.model_dump_json()).model_dump() == mine.model_dump()
    assert cls.model_validate_json(raw.decode()).model_dump() == mine.model_dump()
    assert cls.model_validate_json(mine.model_dump_json()) == mine


@pytest.mark.parametrize("model, case, raw", CASES, ids=[f"{m}-{c}" for m, c, _ in CASES])
def test_validate_reads_prefect_objects_and_their_dumps(
    prefect: Any, model: str, case: str, raw: bytes
) -> None:
    cls = getattr(ours, model)
    mine = cls.model_validate_json(raw)
    theirs = prefect_models()[model].model_validate_json(raw)
    assert cls.model_validate(theirs).model_dump() == mine.model_dump()
    assert cls.model_validate(theirs.model_dump()).model_dump() == mine.model_dump()


def test_validate_errors_are_value_errors_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"TaskRun.*task_key"):
        ours.TaskRun.model_validate({"id": str(ID), "name": "n", "dynamic_key": "0"})
    with pytest.raises(ValueError, match=r"State JSON"):
        ours.State.model_validate_json(b"{not json")
    with pytest.raises(ValueError, match="mode"):
        ours.TaskRunPolicy().model_dump(mode="yaml")


def test_model_copy_as_in_prefect(prefect: Any) -> None:
    from prefect.client.schemas.objects import State as PrefectState

    raw = (FIXTURES / "task_run_created.json").read_bytes()
    run = ours.TaskRun.model_validate_json(raw)
    renamed = run.model_copy(update={"name": "other"})
    assert (renamed.name, run.name) == ("other", ours.TaskRun.model_validate_json(raw).name)
    assert renamed.state is run.state
    deep = run.model_copy(deep=True)
    assert deep == run and deep.state is not run.state
    with pytest.raises(TypeError):
        run.model_copy(update={"no_such_field": 1})
    # A state copy gets a fresh timestamp unless one is given: what Prefect's State.model_copy
    # means to do (in 3.9.1 it sets the timestamp to pydantic's "undefined" marker instead).
    state = our_states.Completed(timestamp=AT)
    assert state.model_copy().timestamp > AT
    assert state.model_copy(update={"timestamp": AT}).timestamp == AT
    assert state.model_copy(update={"message": "m"}).message == "m"
    theirs = PrefectState(type="COMPLETED", timestamp=AT)
    assert theirs.model_copy(update={"timestamp": AT}).timestamp == AT
    assert type(theirs.model_copy().timestamp).__name__ == "PydanticUndefinedType"


def pair(build: Callable[[Any, Any], Any]) -> Tuple[Any, Any]:
    from prefect.client.schemas import objects

    return build(ours, ours.State), build(objects, objects.State)


EQUALITY_CASES: Dict[str, Callable[[Any, Any], Tuple[Any, Any]]] = {
    "same fields, other id": lambda m, S: (
        S(type="COMPLETED", timestamp=AT),
        S(type="COMPLETED", timestamp=AT, id=ID),
    ),
    "other created": lambda m, S: (
        S(type="RUNNING", timestamp=AT),
        S(type="RUNNING", timestamp=AT, created=AT),
    ),
    "other timestamp": lambda m, S: (S(type="COMPLETED", timestamp=AT), S(type="COMPLETED")),
    "other message": lambda m, S: (
        S(type="FAILED", timestamp=AT, message="a"),
        S(type="FAILED", timestamp=AT),
    ),
    "other data": lambda m, S: (
        S(type="COMPLETED", timestamp=AT, data=1),
        S(type="COMPLETED", timestamp=AT, data=2),
    ),
    "other details": lambda m, S: (
        S(type="PENDING", timestamp=AT),
        S(type="PENDING", timestamp=AT, state_details=m.StateDetails(task_run_id=ID)),
    ),
    "state and its dump": lambda m, S: (
        S(type="PENDING", timestamp=AT, id=ID),
        S(type="PENDING", timestamp=AT, id=ID).model_dump(exclude={"id", "created", "updated"}),
    ),
    "state and a string": lambda m, S: (S(type="PENDING"), "PENDING"),
    "details": lambda m, S: (m.StateDetails(task_run_id=ID), m.StateDetails(task_run_id=ID)),
    "inputs": lambda m, S: (m.TaskRunResult(id=ID), m.TaskRunResult(id=ID)),
    "inputs of other kinds": lambda m, S: (m.TaskRunResult(id=ID), m.FlowRunResult(id=ID)),
}


@pytest.mark.parametrize("case", sorted(EQUALITY_CASES))
def test_equality_as_in_prefect(prefect: Any, case: str) -> None:
    (a, b), (pa, pb) = pair(EQUALITY_CASES[case])
    assert (a == b, a != b) == (pa == pb, pa != pb)
    assert (a == a) is True and (a != a) is False


def test_states_hash_like_prefect_and_task_inputs_are_hashable() -> None:
    a = our_states.Completed(timestamp=AT)
    b = a.model_copy(update={"timestamp": AT, "id": ID, "message": "other"})
    assert hash(a) == hash(b)  # same run, timestamp and type, as Prefect hashes
    assert hash(a) != hash(a.model_copy())
    assert len({a, b, a.model_copy()}) == 3  # equal hash, unequal messages
    assert {ours.TaskRunResult(id=ID), ours.TaskRunResult(id=ID)} == {ours.TaskRunResult(id=ID)}
    assert len({ours.TaskRunResult(id=ID), ours.FlowRunResult(id=ID)}) == 2
    with pytest.raises(TypeError):
        hash(ours.TaskRun.model_validate_json((FIXTURES / "task_run_created.json").read_bytes()))


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"message": "all good"},
        {"data": 42},
        {"data": {"rows": 3}, "message": "m"},
        {"name": "Custom"},
        {"name": "Retrying", "type": "RUNNING"},
    ],
)
def test_repr_and_str_match_prefect(prefect: Any, kwargs: Dict[str, Any]) -> None:
    from prefect.client.schemas.objects import State as PrefectState

    kwargs = {"type": "COMPLETED", **kwargs}
    mine, theirs = ours.State(**kwargs), PrefectState(**kwargs)
    assert repr(mine) == repr(theirs)
    assert str(mine) == str(theirs)


def test_state_is_normalised_like_prefect(prefect: Any) -> None:
    from prefect.client.schemas.objects import State as PrefectState

    for type_ in ours.StateType:
        mine, theirs = ours.State(type=type_.value), PrefectState(type=type_.value)
        assert mine.type is type_ and mine.name == theirs.name
        assert (mine.state_details.scheduled_time is None) == (
            theirs.state_details.scheduled_time is None
        )
    assert PrefectState(type="COMPLETED", data={"type": "unpersisted"}).data is None


def test_state_normalisation() -> None:
    assert [ours.State(type=t.value).name for t in ours.StateType] == [
        "Scheduled", "Pending", "Running", "Completed", "Failed", "Cancelled", "Crashed",
        "Paused", "Cancelling",
    ]  # fmt: skip
    assert ours.State(type="SCHEDULED").state_details.scheduled_time is not None
    scheduled = ours.State(type="SCHEDULED", state_details={"scheduled_time": AT.isoformat()})
    assert scheduled.state_details.scheduled_time == AT
    given = ours.State(type="PENDING", id=str(ID), timestamp="2026-01-02T03:04:05.006Z")
    assert (given.id, given.timestamp) == (ID, AT)
    assert ours.State(type="COMPLETED", data={"type": "unpersisted"}).data is None
    with pytest.raises(ValueError, match="state type must be one of"):
        ours.State(type="EXPLODED")
    with pytest.raises(TypeError, match="state type"):
        ours.State(type=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="state_details"):
        ours.State(type="PENDING", state_details={"task_run_id": "not a uuid"})
    # Decoding goes through the same rules: a server state without a name gets one.
    decoded = msgspec.json.decode(b'{"type": "CRASHED"}', type=ours.State)
    assert decoded.name == "Crashed"


CONSTRUCTORS = [
    "AwaitingConcurrencySlot",
    "AwaitingRetry",
    "Cancelled",
    "Cancelling",
    "Completed",
    "Crashed",
    "Failed",
    "InfrastructurePending",
    "Late",
    "Paused",
    "Pending",
    "Retrying",
    "Running",
    "Scheduled",
    "Submitting",
    "Suspended",
]


@pytest.mark.parametrize("name", CONSTRUCTORS)
def test_constructors_match_prefect_and_pass_state_fields_through(prefect: Any, name: str) -> None:
    import prefect.states

    if not hasattr(prefect.states, name):  # Python 3.9's extra installs Prefect 3.4.25
        pytest.skip(f"Prefect {prefect.__version__} has no prefect.states.{name} to compare with")
    extra = {
        "timestamp": AT,
        "id": ID,
        "message": "m",
        "data": 7,
        "state_details": {"flow_run_id": str(ID)},
    }
    mine = getattr(our_states, name)(**extra)
    theirs = getattr(prefect.states, name)(**extra)
    assert (mine.type.value, mine.name, mine.message, mine.data) == (
        theirs.type.value,
        theirs.name,
        theirs.message,
        theirs.data,
    )
    assert (mine.timestamp, mine.id, mine.state_details.flow_run_id) == (AT, ID, ID)
    assert (theirs.timestamp, theirs.id) == (AT, ID)
    assert getattr(our_states, name)(timestamp="2026-01-02T03:04:05.006Z").timestamp == AT
    with pytest.raises(TypeError, match="timestamp"):
        getattr(our_states, name)(timestamp=12)
    with pytest.raises(TypeError, match="id"):
        getattr(our_states, name)(id=12)


def test_tags_read_as_attributes_like_prefect(prefect: Any) -> None:
    from prefect.client.schemas import objects, responses

    for reply in ("accept", "reject", "wait", "abort"):
        raw = (FIXTURES / f"result_{reply}.json").read_bytes()
        mine = ours.OrchestrationResult.model_validate_json(raw)
        theirs = responses.OrchestrationResult.model_validate_json(raw)
        assert mine.details.type == theirs.details.type == f"{reply}_details"
    for cls, kwargs in [
        ("TaskRunResult", {"id": ID}),
        ("FlowRunResult", {"id": ID}),
        ("Parameter", {"name": "p"}),
        ("Constant", {"type": "int"}),
    ]:
        mine, theirs = getattr(ours, cls)(**kwargs), getattr(objects, cls)(**kwargs)
        assert mine.input_type == theirs.input_type
        assert mine.model_dump() == theirs.model_dump()
    assert ours.StateWaitDetails(delay_seconds=3).type == "wait_details"
    # The tag stays out of the fields, so decoding and encoding are unchanged on the wire.
    assert "input_type" not in ours.Parameter.__struct_fields__
    assert msgspec.json.encode(ours.Parameter(name="p")) == b'{"input_type":"parameter","name":"p"}'


def test_a_value_json_cannot_hold_is_a_value_error_in_both(prefect: Any) -> None:
    from prefect.client.schemas.objects import State as PrefectState

    for state in (ours.State(type="FAILED", data=ValueError("x")),
                  PrefectState(type="FAILED", data=ValueError("x"))):  # fmt: skip
        with pytest.raises(ValueError, match="ValueError"):
            state.model_dump(mode="json")
        with pytest.raises(ValueError, match="ValueError"):
            state.model_dump_json()
        assert isinstance(state.model_dump()["data"], ValueError)
