"""Issue 10, item 15: ``str``/``int``/``float`` subclasses (a ``str`` enum, a ``str`` subclass,
an ``IntEnum``, ``numpy.float64``-like floats) are accepted wherever their base type is, and
sent as the plain value: every member sends exactly what the same call with plain values
sends. ``bool`` is still not an ``int`` here."""

import enum
import json
import pathlib
import re
import uuid
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest
import responses

from orchestration_client import SyncPrefectClient
from orchestration_client.schemas import Constant, Parameter, Task, TaskRunResult
from orchestration_client.states import Completed, Running

API = "http://prefect.test/api"
RUN_ID = "1c704402-4756-47e2-ab3f-a88f80551268"


class Text(str):
    """A str subclass, as libraries define them."""


class Colour(str, enum.Enum):
    RED = "red"


class Count(int):
    pass


class Level(enum.IntEnum):
    THREE = 3


class Float64(float):
    """What numpy.float64 is to Python: a float subclass."""


Call = Callable[[Any, Callable[[Any], Any]], Any]


def calls() -> Dict[str, Call]:
    """Each member, given a wrapper that turns a plain value into a subclass (or not)."""

    def task(w: Callable[[Any], Any]) -> Task:
        return Task(
            name=w("t"),
            task_key=w("key"),
            tags=[w("a"), Colour.RED],
            version=w("1"),
            retries=w(2),
            retry_delay_seconds=[w(1), w(2.5)],
            retry_jitter_factor=w(0.5),
        )

    return {
        "create_task_run": lambda c, w: c.create_task_run(
            task(w),
            w(RUN_ID),
            w("dyn"),
            id=w(RUN_ID),
            name=w("n"),
            extra_tags=[w("b")],
            state=Running(name=w("Go"), message=w("m")),
            task_inputs={
                "x": [
                    Parameter(name=w("p")),
                    Constant(type=w("int")),
                    TaskRunResult(id=uuid.UUID(RUN_ID)),
                ]
            },
        ),
        "read_task_runs": lambda c, w: c.read_task_runs(
            sort=w("NAME_ASC"), limit=w(3), offset=w(1)
        ),
        "read_task_run": lambda c, w: c.read_task_run(w(RUN_ID)),
        "set_task_run_name": lambda c, w: c.set_task_run_name(w(RUN_ID), w("renamed")),
        "set_task_run_state": lambda c, w: c.set_task_run_state(
            w(RUN_ID), Completed(name=w("Done"), message=w("m"))
        ),
        "read_task_run_states": lambda c, w: c.read_task_run_states(w(RUN_ID)),
    }


def subclassed(value: Any) -> Any:
    if isinstance(value, str):
        return Colour.RED if value == "red" else Text(value)
    if isinstance(value, int):
        return Level.THREE if value == 3 else Count(value)
    if isinstance(value, float):
        return Float64(value)
    return value


@pytest.fixture
def recorded() -> Iterator[List[Tuple[str, str, Any]]]:
    requests: List[Tuple[str, str, Any]] = []
    created = (pathlib.Path(__file__).parents[1] / "fixtures" / "task_run_created.json").read_text()
    replies = {
        "POST /api/task_runs/": (201, created),
        "GET /api/task_runs/" + RUN_ID: (200, created),
        "POST /api/task_runs/filter": (200, "[]"),
        "PATCH /api/task_runs/" + RUN_ID: (204, ""),
        "GET /api/task_run_states/": (200, "[]"),
        "POST /api/task_runs/" + RUN_ID + "/set_state": (
            201,
            '{"state": null, "status": "ACCEPT", "details": {"type": "accept_details"}}',
        ),
    }

    def reply(request: Any) -> Any:
        path = request.path_url.split("?")[0]
        body = json.loads(request.body or "null")
        if path.endswith("/set_state"):  # a fresh transition_id per proposal (_exactly_once)
            body["state"]["state_details"]["transition_id"] = "<fresh per proposal>"
        requests.append((request.method, request.path_url, body))
        status, body = replies[f"{request.method} {path}"]
        return status, {}, body

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(
            responses.GET,
            f"{API}/csrf-token",
            status=422,
            json={"detail": "CSRF protection is disabled."},
        )
        for method in (responses.GET, responses.POST, responses.PATCH):
            mock.add_callback(method, re.compile(API + "/task_run.*"), reply)
        yield requests


@pytest.mark.parametrize("member", sorted(calls()))
def test_subclasses_are_sent_as_plain_values(
    member: str, recorded: List[Tuple[str, str, Any]]
) -> None:
    client = SyncPrefectClient(API)
    calls()[member](client, lambda v: v)
    sent_plain = recorded[:]
    recorded.clear()
    calls()[member](client, subclassed)
    assert recorded == sent_plain and recorded


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.read_task_runs(limit=True),
        lambda c: c.read_task_runs(offset=False),
        lambda c: c.create_task_run(Task(name="t", retries=True), None, "0"),  # type: ignore[arg-type]
        lambda c: c.create_task_run(Task(name="t", retry_delay_seconds=True), None, "0"),  # type: ignore[arg-type]
        lambda c: c.create_task_run(Task(name="t", retry_jitter_factor=False), None, "0"),
    ],
)
def test_bool_is_still_not_a_number(call: Callable[[Any], Any], recorded: List[Any]) -> None:
    with pytest.raises(TypeError):
        call(SyncPrefectClient(API))
    assert recorded == []


def test_a_str_enum_task_name_derives_the_plain_names_key() -> None:
    # f"{member}" is "Colour.RED" on Python 3.11+ and "red" before; the key must not vary.
    assert Task(name=Colour.RED).task_key == Task(name="red").task_key
    assert Task(name=Text("red")).task_key == Task(name="red").task_key
