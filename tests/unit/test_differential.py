"""Differential test: for the same inputs, our client and Prefect's own ``SyncPrefectClient``
send the same requests (method, path, query, JSON body) to a recording HTTP server on
127.0.0.1, and return objects with the same values for the same replies.

Allowed differences, as the issue lists them: key order, client-generated values (the
random CSRF client id), tag order (Prefect builds tags from a set), and one deliberate
difference (README, "Deliberate differences"): we omit body keys whose value is the server's
own default, where Prefect sends them (``null`` filters, ``"labels": {}``, ...). So before
comparing, keys equal to the server's default are dropped from both bodies, the defaults
read from the Prefect server's request models (not from ours). Everything else must be
equal.
"""

import datetime
import enum
import http.server
import json
import pathlib
import threading
import types
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest
from support.helpers import installed_prefect, prefect_is_older

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures"
FLOW_RUN_ID = uuid.UUID("56b46a9a-eb09-4fbb-847d-c7c0fc0eb24d")
OTHER_ID = uuid.UUID("0190c1e2-9a3b-7c4d-8e5f-0123456789ab")
AT = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)

Recorded = Tuple[str, str, Dict[str, List[str]], Any]

# Reading Prefect's deprecated policy fields (max_retries, ...) warns; we compare them anyway.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.skipif(prefect_is_older(), reason=(
        f"compares with Prefect 3.9.1's client; Prefect {installed_prefect()} is installed "
        "(the extras' choice on Python 3.9 and 3.10)")),
]


class RecordingServer:
    """Answers like a Prefect server (captured replies) and records every request."""

    def __init__(self) -> None:
        self.requests: List[Recorded] = []
        self.set_state_reply = "result_accept"
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, payload: Optional[bytes]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload or b"")))
                self.end_headers()
                if payload:
                    self.wfile.write(payload)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                recorder.requests.append(
                    (self.command, url.path, parse_qs(url.query), json.loads(raw) if raw else None)
                )
                self._reply(*recorder.route(self.command, url.path))

            do_GET = do_POST = do_PATCH = _handle

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.api_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def fixture(name: str) -> bytes:
        return (FIXTURES / f"{name}.json").read_bytes()

    def route(self, method: str, path: str) -> Tuple[int, Optional[bytes]]:
        simple = {
            ("GET", "/api/health"): (200, b"true"),
            ("GET", "/api/hello"): (200, json.dumps("👋").encode()),
            ("GET", "/api/admin/version"): (200, b'"3.9.1"'),
            ("GET", "/api/csrf-token"): (422, b'{"detail":"CSRF protection is disabled."}'),
            ("POST", "/api/task_runs/"): (201, self.fixture("task_run_created")),
            ("POST", "/api/task_runs/filter"): (200, self.fixture("task_runs_filter")),
            ("GET", "/api/task_run_states/"): (200, self.fixture("task_run_states")),
        }
        if (method, path) in simple:
            return simple[(method, path)]
        if method == "POST" and path.endswith("/set_state"):
            return 201, self.fixture(self.set_state_reply)
        if method == "PATCH":
            return 204, None
        if method == "GET" and path.startswith("/api/task_runs/"):
            return 200, self.fixture("task_run_created")
        return 404, b'{"detail":"Not Found"}'

    def take(self) -> List[Recorded]:
        taken, self.requests = self.requests, []
        return taken

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Side(types.SimpleNamespace):
    """One client plus the modules that hold its filters, states, sorting and models."""


@pytest.fixture(scope="module")
def server() -> Iterator[RecordingServer]:
    recording = RecordingServer()
    yield recording
    recording.stop()


@pytest.fixture(scope="module")
def sides(server: RecordingServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Side]]:
    patch = pytest.MonkeyPatch()
    patch.setenv("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    patch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    import prefect.client.orchestration as prefect_client
    import prefect.client.schemas.filters as prefect_filters
    import prefect.client.schemas.objects as prefect_objects
    import prefect.client.schemas.sorting as prefect_sorting
    import prefect.states as prefect_states

    import orchestration_client
    import orchestration_client.filters as our_filters
    import orchestration_client.schemas as our_schemas
    import orchestration_client.sorting as our_sorting
    import orchestration_client.states as our_states

    yield {
        "ours": Side(client=orchestration_client.SyncPrefectClient(server.api_url),
                     filters=our_filters, states=our_states, sorting=our_sorting,
                     schemas=our_schemas),
        "prefect": Side(client=prefect_client.SyncPrefectClient(server.api_url),
                        filters=prefect_filters, states=prefect_states, sorting=prefect_sorting,
                        schemas=prefect_objects),
    }  # fmt: skip
    patch.undo()


def server_default(field: Any) -> Any:
    """A server model field's default as JSON, or ``NO_DEFAULT``."""
    from pydantic import BaseModel

    if field.is_required():
        return NO_DEFAULT
    default = field.get_default(call_default_factory=True)
    if isinstance(default, BaseModel):
        return default.model_dump(mode="json")
    return default.value if isinstance(default, enum.Enum) else default


NO_DEFAULT = object()


def drop_server_defaults(body: Any, model: Any) -> Any:
    """``body`` without the keys whose value equals ``model``'s default, recursively into
    fields that are themselves server models. ``null`` for a field with a random default
    (a run's ``name``) is dropped too: the server reads null and absent alike there."""
    import typing

    from pydantic import BaseModel

    if not isinstance(body, dict):
        return body
    kept = {}
    for key, item in body.items():
        field = model.model_fields.get(key)
        if field is None:
            kept[key] = item
            continue
        default = server_default(field)
        random_default = field.default_factory is not None and key == "name"
        if item == default or (item is None and random_default):
            continue
        nested = [t for t in (field.annotation, *typing.get_args(field.annotation))
                  if isinstance(t, type) and issubclass(t, BaseModel)]  # fmt: skip
        kept[key] = drop_server_defaults(item, nested[0]) if nested else item
    return kept


def drop_query_defaults(body: Dict[str, Any]) -> Dict[str, Any]:
    """``POST /task_runs/filter``: FastAPI reads a ``null`` body key as absent, so null
    filters, sort and limit, and a zero offset, are the server's defaults."""
    import prefect.server.schemas.filters as server_filters

    models = {"flows": server_filters.FlowFilter, "flow_runs": server_filters.FlowRunFilter,
              "task_runs": server_filters.TaskRunFilter,
              "deployments": server_filters.DeploymentFilter}  # fmt: skip
    kept = {}
    for key, item in body.items():
        if item is None or (key == "offset" and item == 0):
            continue
        kept[key] = drop_server_defaults(item, models[key]) if key in models else item
    return kept


def normalise_request(request: Recorded) -> Recorded:
    import prefect.server.schemas.actions as server_actions

    method, path, query, body = request
    if path == "/api/csrf-token":
        query = {"client": ["<random>"]}
    if isinstance(body, dict) and isinstance(body.get("tags"), list):
        body = {**body, "tags": sorted(body["tags"])}
    if path.endswith("/set_state") and isinstance(body, dict) and "state_details" in body["state"]:
        # Ours stamps every proposal with a fresh transition_id (see _exactly_once); Prefect's
        # sends null. Only that one field is set aside.
        details = dict(body["state"]["state_details"])
        details["transition_id"] = None
        body = {**body, "state": {**body["state"], "state_details": details}}
    if method == "POST" and isinstance(body, dict):
        if path == "/api/task_runs/":
            body = drop_server_defaults(body, server_actions.TaskRunCreate)
        elif path == "/api/task_runs/filter":
            body = drop_query_defaults(body)
        elif path.endswith("/set_state"):
            body = {
                **({"force": body["force"]} if body.get("force") else {}),
                "state": drop_server_defaults(body["state"], server_actions.StateCreate),
            }
    return method, path, query, body


@pytest.fixture(scope="module")
def prefect_task() -> Any:
    from prefect import task

    @task(
        tags=["a", "x"],
        retries=2,
        retry_delay_seconds=[1.5, 3],
        retry_jitter_factor=0.5,
        version="1.0",
    )
    def my_task() -> None: ...

    return my_task


def run_both(
    server: RecordingServer, sides: Dict[str, Side], call: Callable[[Side], Any]
) -> Tuple[Any, Any]:
    """Run ``call`` on each side, compare what was sent, and return both results."""
    results, sent = {}, {}
    for name, side in sides.items():
        results[name] = call(side)
        sent[name] = [normalise_request(r) for r in server.take()]
    assert sent["ours"] == sent["prefect"]
    assert sent["ours"], "nothing was sent"
    return results["ours"], results["prefect"]


def value(obj: Any) -> Any:
    """A plain value for comparing a msgspec Struct with a pydantic model field by field."""
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, msgspec.Struct):
        return {name: value(getattr(obj, name)) for name in obj.__struct_fields__}
    if isinstance(obj, list):
        return [value(item) for item in obj]
    if isinstance(obj, dict):
        return {key: value(item) for key, item in obj.items()}
    return obj


def same_values(ours: Any, theirs: Any, path: str = "$") -> None:
    """Every field of our object equals the same-named attribute of Prefect's."""
    if isinstance(ours, msgspec.Struct):
        for name in ours.__struct_fields__:
            same_values(getattr(ours, name), getattr(theirs, name), f"{path}.{name}")
    elif isinstance(ours, list):
        assert len(ours) == len(theirs), path
        for index, (a, b) in enumerate(zip(ours, theirs)):
            same_values(a, b, f"{path}[{index}]")
    elif isinstance(ours, dict):
        assert set(ours) == set(theirs), path
        for key in ours:
            same_values(ours[key], theirs[key], f"{path}.{key}")
    else:
        assert value(ours) == value(theirs), f"{path}: {ours!r} != {theirs!r}"


# ---- the cases ---------------------------------------------------------------------------------


def test_server_and_version_members(server: RecordingServer, sides: Dict[str, Side]) -> None:
    ours, theirs = run_both(server, sides, lambda s: s.client.api_healthcheck())
    assert ours is None and theirs is None
    ours, theirs = run_both(server, sides, lambda s: s.client.hello().json())
    assert ours == theirs == "👋"
    ours, theirs = run_both(server, sides, lambda s: s.client.api_version())
    assert ours == theirs == "3.9.1"
    assert sides["ours"].client.client_version() == sides["prefect"].client.client_version()
    run_both(server, sides, lambda s: s.client.raise_for_api_version_mismatch())
    assert str(sides["ours"].client.api_url) == str(sides["prefect"].client.api_url)


def test_create_minimal(server: RecordingServer, sides: Dict[str, Side], prefect_task: Any) -> None:
    ours, theirs = run_both(
        server, sides, lambda s: s.client.create_task_run(prefect_task, None, 0)
    )
    same_values(ours, theirs)


def test_create_with_everything(
    server: RecordingServer, sides: Dict[str, Side], prefect_task: Any
) -> None:
    def call(s: Side) -> Any:
        inputs = {
            "x": [
                s.schemas.TaskRunResult(id=OTHER_ID),
                s.schemas.Parameter(name="p"),
                s.schemas.Constant(type="int"),
                s.schemas.FlowRunResult(id=OTHER_ID),
            ],
            "__parents__": [s.schemas.TaskRunResult(id=OTHER_ID)],
        }
        return s.client.create_task_run(
            prefect_task,
            FLOW_RUN_ID,
            "dyn",
            id=OTHER_ID,
            name="named",
            extra_tags=["x", "b"],
            state=s.states.Running(message="m"),
            task_inputs=inputs,
        )

    same_values(*run_both(server, sides, call))


@pytest.mark.parametrize("constructor, kwargs", [
    ("Pending", {}), ("Running", {"message": "hi"}), ("Completed", {"name": "Done"}),
    ("Failed", {"message": "boom"}), ("Crashed", {}), ("Cancelled", {}), ("Cancelling", {}),
    ("Retrying", {}), ("Scheduled", {"scheduled_time": AT}), ("AwaitingRetry", {"scheduled_time": AT}),
    ("AwaitingConcurrencySlot", {"scheduled_time": AT}), ("Late", {"scheduled_time": AT}),
    ("Paused", {"pause_expiration_time": AT, "pause_key": "k", "reschedule": True}),
    ("Suspended", {"pause_expiration_time": AT}),
])  # fmt: skip
@pytest.mark.parametrize("force", [False, True])
def test_set_state_for_every_constructor(
    server: RecordingServer,
    sides: Dict[str, Side],
    constructor: str,
    kwargs: Dict[str, Any],
    force: bool,
) -> None:
    def call(s: Side) -> Any:
        state = getattr(s.states, constructor)(**kwargs)
        return s.client.set_task_run_state(FLOW_RUN_ID, state, force=force)

    same_values(*run_both(server, sides, call))


@pytest.mark.parametrize("reply", ["result_accept", "result_reject", "result_wait", "result_abort"])
def test_orchestration_results_carry_the_same_values(
    server: RecordingServer, sides: Dict[str, Side], reply: str
) -> None:
    server.set_state_reply = reply
    try:
        ours, theirs = run_both(
            server, sides, lambda s: s.client.set_task_run_state(FLOW_RUN_ID, s.states.Running())
        )
    finally:
        server.set_state_reply = "result_accept"
    same_values(ours.state, theirs.state)
    assert value(ours.status) == value(theirs.status)
    assert value(ours.details) == {
        k: v for k, v in theirs.details.model_dump().items() if k != "type"
    }


def test_read_members(server: RecordingServer, sides: Dict[str, Side]) -> None:
    same_values(*run_both(server, sides, lambda s: s.client.read_task_run(FLOW_RUN_ID)))
    same_values(*run_both(server, sides, lambda s: s.client.read_task_run_states(FLOW_RUN_ID)))
    run_both(
        server, sides, lambda s: s.client.set_task_run_name(FLOW_RUN_ID, "renamed").status_code
    )
    run_both(server, sides, lambda s: s.client.set_task_run_name(FLOW_RUN_ID, None).status_code)


FILTER_CASES: List[Tuple[str, Callable[[Side], Dict[str, Any]]]] = [
    ("nothing", lambda s: {}),
    ("sort limit offset", lambda s: {"sort": s.sorting.TaskRunSort.NAME_ASC, "limit": 10, "offset": 5}),
    ("duration sort", lambda s: {"sort": s.sorting.TaskRunSort.DURATION_DESC}),
    ("flow filter", lambda s: {"flow_filter": s.filters.FlowFilter(
        id=s.filters.FlowFilterId(any_=[OTHER_ID]), name=s.filters.FlowFilterName(like_="x"),
        tags=s.filters.FlowFilterTags(all_=["t"], is_null_=False))}),
    ("flow run filter, set fields only", lambda s: {"flow_run_filter": s.filters.FlowRunFilter(
        id=s.filters.FlowRunFilterId(any_=[OTHER_ID]),
        tags=s.filters.FlowRunFilterTags(any_=["t"]),
        state=s.filters.FlowRunFilterState(type=s.filters.FlowRunFilterStateType(
            not_any_=[s.schemas.StateType.SCHEDULED])),
        start_time=s.filters.FlowRunFilterStartTime(after_=AT),
        created_by=s.filters.FlowRunFilterCreatedBy(type_=["DEPLOYMENT"]),
        parent_task_run_id=s.filters.FlowRunFilterParentTaskRunId(is_null_=True))}),
    ("flow run filter, operator or_", lambda s: {"flow_run_filter": s.filters.FlowRunFilter(
        operator=s.filters.Operator.or_, name=s.filters.FlowRunFilterName(any_=["a"]),
        idempotency_key=s.filters.FlowRunFilterIdempotencyKey(any_=["k"]))}),
    ("task run filter", lambda s: {"task_run_filter": s.filters.TaskRunFilter(
        id=s.filters.TaskRunFilterId(any_=[OTHER_ID]),
        name=s.filters.TaskRunFilterName(any_=["n"], like_="m"),
        tags=s.filters.TaskRunFilterTags(all_=["a"]),
        state=s.filters.TaskRunFilterState(
            type=s.filters.TaskRunFilterStateType(any_=[s.schemas.StateType.COMPLETED]),
            name=s.filters.TaskRunFilterStateName(any_=["Completed"])),
        start_time=s.filters.TaskRunFilterStartTime(before_=AT),
        end_time=s.filters.TaskRunFilterEndTime(is_null_=True),
        subflow_runs=s.filters.TaskRunFilterSubFlowRuns(exists_=False),
        flow_run_id=s.filters.TaskRunFilterFlowRunId(any_=[FLOW_RUN_ID]))}),
    ("deployment filter", lambda s: {"deployment_filter": s.filters.DeploymentFilter(
        id=s.filters.DeploymentFilterId(not_any_=[OTHER_ID]),
        name=s.filters.DeploymentFilterName(any_=["d"]),
        tags=s.filters.DeploymentFilterTags(any_=["t"]),
        work_queue_name=s.filters.DeploymentFilterWorkQueueName(any_=["q"]),
        concurrency_limit=s.filters.DeploymentFilterConcurrencyLimit(ge_=1, le_=5))}),
]  # fmt: skip


@pytest.mark.parametrize("build", [c[1] for c in FILTER_CASES], ids=[c[0] for c in FILTER_CASES])
def test_read_task_runs(
    server: RecordingServer, sides: Dict[str, Side], build: Callable[[Side], Dict[str, Any]]
) -> None:
    ours, theirs = run_both(server, sides, lambda s: s.client.read_task_runs(**build(s)))
    same_values(ours, theirs)


# ---- attribution header bytes (issue 10 item 3) ------------------------------------------------


def test_attribution_header_bytes_match_prefects_client(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    """Prefect 3.9.1's client (httpx) and ours on the same raw-socket stub, with the same
    non-Latin-1 attribution variables, send the same header bytes (UTF-8)."""
    import prefect.client.orchestration as prefect_client
    from support.raw_capture import ATTRIBUTION_ENV, ATTRIBUTION_HEADERS, RawCapture

    import orchestration_client

    capture = RawCapture()
    request.addfinalizer(capture.stop)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    for variable, text in ATTRIBUTION_ENV.items():
        monkeypatch.setenv(variable, text)
    with prefect_client.SyncPrefectClient(capture.api_url) as theirs:
        assert theirs.api_version() == "3.9.1"
    prefect_lines = capture.header_lines(ATTRIBUTION_HEADERS)
    capture.heads.clear()
    assert orchestration_client.SyncPrefectClient(capture.api_url).api_version() == "3.9.1"
    assert sorted(capture.header_lines(ATTRIBUTION_HEADERS)) == sorted(prefect_lines)
    assert "X-Prefect-Flow-Name: データ処理".encode() in prefect_lines
