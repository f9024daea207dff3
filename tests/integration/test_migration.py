"""A migration corpus: realistic scripts written once against a small namespace that either
Prefect 3.9.1's client or ours fills (the imports are swapped, nothing else), run against the
real server, with the same observable results.

Each script gets its own flow run per side, uses the same names on both sides, and returns
what a user would look at: statuses, state names, counts, dumps. Server-made values (ids,
timestamps, random run names) are replaced by placeholders before comparing; tag order is
sorted (Prefect builds tags from a set). The one thing a namespace adds beyond imports is
``task(...)``: Prefect scripts decorate a function with ``@task``, ours build a ``Task``.
"""

import datetime
import enum
import importlib.util
import json
import re
import types
import uuid
from typing import Any, Callable, Dict, Iterator, List

import pytest
from support.helpers import installed_prefect, prefect_is_older

# A differential against Prefect's own client, so it needs Prefect; looked up without
# importing it, since importing Prefect at collection time would fix its settings (and its
# database path) before other tests' fixtures set PREFECT_HOME.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.skipif(importlib.util.find_spec("prefect") is None, reason="needs prefect"),
    pytest.mark.skipif(prefect_is_older(), reason=(
        f"compares with Prefect 3.9.1's client; Prefect {installed_prefect()} is installed "
        "(the extras' choice on Python 3.9 and 3.10)")),
]

Namespace = types.SimpleNamespace
UUID_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME_TEXT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


# ---- the two namespaces ------------------------------------------------------------------------


def our_namespace() -> Namespace:
    from orchestration_client import exceptions, filters, get_client, schemas, sorting, states

    def task(name: str, key: str, tags: List[str] = [], retries: int = 0) -> Any:  # noqa: B006
        return schemas.Task(name=name, task_key=key, tags=tags, retries=retries)

    return Namespace(
        get_client=get_client,
        states=states,
        filters=filters,
        schemas=schemas,
        responses=schemas,
        sorting=sorting,
        exceptions=exceptions,
        task=task,
    )


def prefect_namespace() -> Namespace:
    import prefect.exceptions as exceptions
    import prefect.states as states
    from prefect import task as prefect_task
    from prefect.client.orchestration import get_client
    from prefect.client.schemas import filters, objects, responses, sorting

    def task(name: str, key: str, tags: List[str] = [], retries: int = 0) -> Any:  # noqa: B006
        made = prefect_task(name=name, tags=tags, retries=retries)(lambda: None)
        made.task_key = key  # Prefect derives it from the function's code; pin it to compare
        return made

    return Namespace(
        get_client=get_client,
        states=states,
        filters=filters,
        schemas=objects,
        responses=responses,
        sorting=sorting,
        exceptions=exceptions,
        task=task,
    )


# ---- the scripts -------------------------------------------------------------------------------
# Each takes the namespace ``ns`` and a context (its flow run id, a flow name) and returns
# what its user would print or store.


def run_a_task_by_hand(ns: Namespace, ctx: Namespace) -> Any:
    with ns.get_client(sync_client=True) as client:
        run = client.create_task_run(ns.task("load", "load-key"), ctx.flow_run_id, "0", name="load")
        statuses = [client.set_task_run_state(run.id, ns.states.Running()).status.value]
        done = client.set_task_run_state(run.id, ns.states.Completed(message="loaded 3 rows"))
        statuses.append(done.status.value)
        final = client.read_task_run(run.id)
        history = client.read_task_run_states(run.id)
        return {
            "statuses": statuses,
            "final": (final.state_type.value, final.state_name, final.run_count, final.name),
            "history": [(s.name, s.message, s.is_final()) for s in history],
            "ended": final.end_time is not None and final.total_run_time >= datetime.timedelta(0),
        }


def states_with_data(ns: Namespace, ctx: Namespace) -> Any:
    """Code that attaches results to states, as a Prefect task runner does locally."""
    with ns.get_client(sync_client=True) as client:
        run = client.create_task_run(
            ns.task("compute", "compute-key", retries=1), ctx.flow_run_id, "0", name="compute"
        )
        proposals = [
            ns.states.Running(data={"started": True}),
            ns.states.Failed(data=ValueError("division by zero"), message="division by zero"),
            ns.states.Running(),
            ns.states.Completed(data=42),
            ns.states.Running(),
            ns.states.Completed(data={"rows": 3, "mean": float("nan")}),
            ns.states.Failed(data=ValueError("late")),
        ]
        outcomes = []
        for state in proposals:
            result = client.set_task_run_state(run.id, state)
            outcomes.append((result.status.value, result.details.type, result.state.name))
        kept = [repr(state.data) for state in proposals]
        history = [(s.type.value, s.name, s.data) for s in client.read_task_run_states(run.id)]
        return {"outcomes": outcomes, "kept locally": kept, "history": history}


def retry_loop(ns: Namespace, ctx: Namespace) -> Any:
    """A hand-written retry loop driven by the orchestrator's answers."""
    with ns.get_client(sync_client=True) as client:
        run = client.create_task_run(
            ns.task("flaky", "flaky-key", retries=2), ctx.flow_run_id, "0", name="flaky"
        )
        log = []
        for attempt in range(5):
            started = client.set_task_run_state(run.id, ns.states.Running())
            log.append(("run", started.status.value, started.state.name))
            if attempt < 2:
                failed = client.set_task_run_state(
                    run.id, ns.states.Failed(message=f"try {attempt}")
                )
                log.append(("fail", failed.status.value, failed.details.type, failed.state.name))
                if failed.status == ns.responses.SetStateStatus.REJECT:
                    continue
                break
            done = client.set_task_run_state(run.id, ns.states.Completed())
            log.append(("done", done.status.value, done.state.is_completed()))
            break
        final = client.read_task_run(run.id)
        return {"log": log, "run_count": final.run_count, "state": final.state_name}


def nightly_report(ns: Namespace, ctx: Namespace) -> Any:
    """A filter-heavy report: failures and successes of one flow run, paged and sorted."""
    f = ns.filters
    with ns.get_client(sync_client=True) as client:
        finals = [
            ns.states.Completed,
            ns.states.Failed,
            ns.states.Completed,
            ns.states.Crashed,
            ns.states.Completed,
            ns.states.Failed,
            ns.states.Cancelled,
        ]
        for index, final in enumerate(finals):
            tags = ["report", "even" if index % 2 == 0 else "odd"]
            task = ns.task(f"step-{index}", f"step-{index}-key", tags=tags)
            run = client.create_task_run(task, ctx.flow_run_id, str(index), name=f"rpt-{index}")
            client.set_task_run_state(run.id, ns.states.Running())
            client.set_task_run_state(run.id, final(message=f"step {index}"))
        flow_run = uuid.UUID(ctx.flow_run_id)
        mine = f.TaskRunFilter(flow_run_id=f.TaskRunFilterFlowRunId(any_=[flow_run]))
        by_type = {}
        for kind in (ns.schemas.StateType.COMPLETED, ns.schemas.StateType.FAILED):
            runs = client.read_task_runs(
                task_run_filter=f.TaskRunFilter(
                    flow_run_id=f.TaskRunFilterFlowRunId(any_=[flow_run]),
                    state=f.TaskRunFilterState(type=f.TaskRunFilterStateType(any_=[kind])),
                    tags=f.TaskRunFilterTags(all_=["report"]),
                ),
                sort=ns.sorting.TaskRunSort.NAME_ASC,
            )
            by_type[kind.value] = [r.name for r in runs]
        pages, offset = [], 0
        while True:
            page = client.read_task_runs(
                task_run_filter=mine, sort=ns.sorting.TaskRunSort.NAME_DESC, limit=3, offset=offset
            )
            if not page:
                break
            pages.append([r.name for r in page])
            offset += len(page)
        even = client.read_task_runs(
            flow_run_filter=f.FlowRunFilter(id=f.FlowRunFilterId(any_=[flow_run])),
            flow_filter=f.FlowFilter(name=f.FlowFilterName(any_=[ctx.flow_name])),
            task_run_filter=f.TaskRunFilter(
                tags=f.TaskRunFilterTags(all_=["even"]), name=f.TaskRunFilterName(like_="rpt-")
            ),
            sort=ns.sorting.TaskRunSort.NAME_ASC,
        )
        not_done = client.read_task_runs(
            task_run_filter=f.TaskRunFilter(
                flow_run_id=f.TaskRunFilterFlowRunId(any_=[flow_run]),
                state=f.TaskRunFilterState(
                    name=f.TaskRunFilterStateName(any_=["Crashed", "Cancelled"])
                ),
            ),
            sort=ns.sorting.TaskRunSort.NAME_ASC,
        )
        return {
            "by type": by_type,
            "pages": pages,
            "even": [r.name for r in even],
            "not done": [(r.name, r.state.name, r.state.message) for r in not_done],
        }


def error_handling(ns: Namespace, ctx: Namespace) -> Any:
    """``except PrefectException`` / ``ObjectNotFound``, as service code catches them."""
    seen = []
    with ns.get_client(sync_client=True) as client:
        try:
            client.read_task_run(uuid.uuid4())
        except ns.exceptions.ObjectNotFound as exc:
            seen.append(("not found", isinstance(exc, ns.exceptions.PrefectException)))
        try:
            client.read_task_run(uuid.uuid4())
        except ns.exceptions.PrefectException as exc:
            seen.append(("caught as PrefectException", type(exc).__name__))
        try:
            client.create_task_run(ns.task("orphan", "orphan-key"), uuid.uuid4(), "0")
        except Exception as exc:  # Prefect: an httpx error; ours: a requests error
            seen.append(("missing flow run", exc.response.status_code))
        try:
            raise ns.exceptions.ObjectNotFound(http_exc=ValueError("404"), help_message="no run")
        except ns.exceptions.PrefectException as exc:
            seen.append(("own", str(exc), type(exc.http_exc).__name__))
        already = ns.exceptions.ObjectAlreadyExists(http_exc=ValueError("409"))
        seen.append(("already", isinstance(already, ns.exceptions.PrefectException)))
        seen.append(("states of nothing", client.read_task_run_states(uuid.uuid4())))
    return seen


DURATIONS = {"estimated_run_time", "estimated_start_time_delta", "total_run_time"}


def scrub(value: Any) -> Any:
    """Placeholders for server-made values (ids, times, measured durations); sorted tags.
    A state's ``transition_id`` is set aside: ours stamps every proposal with one (applied
    at most once, docs/migration.md), Prefect's sends none."""
    if isinstance(value, dict):
        return {
            k: sorted(v) if k == "tags" else "<duration>" if k in DURATIONS
            else "<transition>" if k == "transition_id" else scrub(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [scrub(item) for item in value]
    if isinstance(value, uuid.UUID) or (isinstance(value, str) and UUID_TEXT.match(value)):
        return "<uuid>"
    if isinstance(value, datetime.datetime) or (isinstance(value, str) and TIME_TEXT.match(value)):
        return "<time>"
    if isinstance(value, enum.Enum):
        return value.value
    return value


def serialise_runs(ns: Namespace, ctx: Namespace) -> Any:
    """Code that logs, stores and copies runs with pydantic's methods."""
    with ns.get_client(sync_client=True) as client:
        inputs = {"x": [ns.schemas.Parameter(name="p"), ns.schemas.Constant(type="int")]}
        run = client.create_task_run(
            ns.task("store", "store-key", tags=["b", "a"]),
            ctx.flow_run_id,
            "0",
            name="store",
            task_inputs=inputs,
        )
        client.set_task_run_state(run.id, ns.states.Running())
        run = client.read_task_run(run.id)
        text = run.model_dump_json()
        restored = ns.schemas.TaskRun.model_validate_json(text)
        copied = run.model_copy(update={"name": "store-copy"})
        states = client.read_task_run_states(run.id)
        state_dicts = [s.model_dump(mode="json") for s in states]
        return {
            "python": scrub(run.model_dump()),
            "json": scrub(run.model_dump(mode="json")),
            "text": scrub(json.loads(text)),
            "round trip equal": restored == run,
            "copy": (copied.name, run.name, copied == run),
            "states": scrub(state_dicts),
            "state back": ns.schemas.State.model_validate(state_dicts[-1]) == states[-1],
            "input types": [i.input_type for i in run.task_inputs["x"]],
        }


def inspect_states(ns: Namespace, ctx: Namespace) -> Any:
    """State helpers code relies on: names, types, repr/str, equality, predicates."""
    s = ns.states
    made = [
        s.Pending(),
        s.Running(),
        s.Completed(message="ok"),
        s.Failed(message="bad"),
        s.Crashed(),
        s.Cancelled(),
        s.Cancelling(),
        s.Scheduled(),
        s.AwaitingRetry(),
        s.Retrying(),
        s.Late(),
        s.Paused(),
        s.Suspended(),
        s.AwaitingConcurrencySlot(),
        s.Submitting(),
        s.InfrastructurePending(),
        ns.schemas.State(type="COMPLETED"),
    ]
    state = s.Completed(message="ok")
    twin = state.model_copy(update={"id": uuid.uuid4(), "timestamp": state.timestamp})
    return {
        "names": [(m.type.value, m.name, m.is_final(), m.is_scheduled()) for m in made],
        "repr": [repr(m) for m in made],
        "str": [str(m) for m in made],
        "equal ignoring id": state == twin,
        "hash ignores message": hash(state)
        == hash(twin.model_copy(update={"message": "other", "timestamp": state.timestamp})),
        "scheduled has a time": made[7].state_details.scheduled_time is not None,
    }


def rename_and_recreate(ns: Namespace, ctx: Namespace) -> Any:
    with ns.get_client(sync_client=True) as client:
        task = ns.task("named", "named-key", tags=["x"])
        first = client.create_task_run(task, ctx.flow_run_id, "7", name="before")
        again = client.create_task_run(task, ctx.flow_run_id, "7", name="ignored")
        client.set_task_run_name(first.id, "after")
        renamed = client.read_task_run(first.id).name
        client.set_task_run_name(first.id, None)
        random_name = client.read_task_run(first.id).name
        return {
            "same run": again.id == first.id and again == first,
            "names": (first.name, again.name, renamed),
            "random name given": bool(random_name) and random_name != "after",
        }


def schedule_and_wait(ns: Namespace, ctx: Namespace) -> Any:
    with ns.get_client(sync_client=True) as client:
        run = client.create_task_run(
            ns.task("later", "later-key"), ctx.flow_run_id, "0", name="later"
        )
        soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        scheduled = client.set_task_run_state(run.id, ns.states.Scheduled(scheduled_time=soon))
        waited = client.set_task_run_state(run.id, ns.states.Running())
        details = waited.details
        return {
            "scheduled": (scheduled.status.value, scheduled.details.type),
            "wait": (waited.status.value, details.type, 3500 <= details.delay_seconds <= 3600),
            "state after wait": client.read_task_run(run.id).state_name,
        }


def forced_transitions(ns: Namespace, ctx: Namespace) -> Any:
    with ns.get_client(sync_client=True) as client:
        run = client.create_task_run(ns.task("forced", "forced-key"), None, ctx.flow_run_id)
        done = client.set_task_run_state(run.id, ns.states.Completed(), force=True)
        refused = client.set_task_run_state(run.id, ns.states.Crashed(data={"why": "oom"}))
        forced = client.set_task_run_state(run.id, ns.states.Crashed(), force=True)
        return [
            (r.status.value, r.details.type, getattr(r.details, "reason", None), r.state.name)
            for r in (done, refused, forced)
        ]


def lineage(ns: Namespace, ctx: Namespace) -> Any:
    """Task inputs link runs; code walks them by ``input_type``."""
    with ns.get_client(sync_client=True) as client:
        upstream = client.create_task_run(ns.task("up", "up-key"), ctx.flow_run_id, "0", name="up")
        inputs = {
            "data": [ns.schemas.TaskRunResult(id=upstream.id)],
            "n": [ns.schemas.Parameter(name="n")],
            "k": [ns.schemas.Constant(type="int")],
            "__parents__": [ns.schemas.TaskRunResult(id=upstream.id)],
        }
        down = client.create_task_run(
            ns.task("down", "down-key"), ctx.flow_run_id, "0", name="down", task_inputs=inputs
        )
        read = client.read_task_run(down.id)
        walked = {
            key: [(i.input_type, getattr(i, "id", None) == upstream.id) for i in items]
            for key, items in sorted(read.task_inputs.items())
        }
        return {"walked": walked, "hashable": len({*read.task_inputs["data"], *inputs["data"]})}


def health_and_versions(ns: Namespace, ctx: Namespace) -> Any:
    with ns.get_client(sync_client=True) as client:
        client.raise_for_api_version_mismatch()
        return {
            "healthy": client.api_healthcheck() is None,
            "server": client.api_version(),
            "client": client.client_version(),
            "hello": client.hello().json(),
            "url ends": str(client.api_url).endswith("/api/"),
        }


SCRIPTS: Dict[str, Callable[[Namespace, Namespace], Any]] = {
    script.__name__: script
    for script in (
        run_a_task_by_hand,
        states_with_data,
        retry_loop,
        nightly_report,
        error_handling,
        serialise_runs,
        inspect_states,
        rename_and_recreate,
        schedule_and_wait,
        forced_transitions,
        lineage,
        health_and_versions,
    )
}


# ---- running them ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def namespaces(api_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    patch = pytest.MonkeyPatch()
    patch.setenv("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    patch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    patch.setenv("PREFECT_API_URL", api_url)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield {"ours": our_namespace(), "prefect": prefect_namespace()}
    patch.undo()


def context(seed: Any) -> Namespace:
    flow = seed.flow()
    return Namespace(flow_run_id=seed.flow_run(flow["id"])["id"], flow_name=flow["name"])


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_gives_the_same_results_with_both_clients(
    name: str, namespaces: Dict[str, Namespace], seed: Any
) -> None:
    results = {}
    for side, ns in namespaces.items():
        results[side] = scrub(SCRIPTS[name](ns, context(seed)))
    assert results["ours"] == results["prefect"], differences(results["ours"], results["prefect"])
    assert results["ours"], "the script observed something"


def differences(ours: Any, theirs: Any, path: str = "$") -> List[str]:
    """The paths where two results differ, for a readable failure."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return [
            line
            for key in sorted(set(ours) | set(theirs), key=str)
            for line in differences(
                ours.get(key, "<missing>"), theirs.get(key, "<missing>"), f"{path}.{key}"
            )
        ]
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [
            line
            for i, (a, b) in enumerate(zip(ours, theirs))
            for line in differences(a, b, f"{path}[{i}]")
        ]
    return [] if ours == theirs else [f"{path}: ours {ours!r}, Prefect's {theirs!r}"]


def test_the_corpus_observes_what_it_claims(namespaces: Dict[str, Namespace], seed: Any) -> None:
    """Spot checks on our side, so that two equal wrong answers cannot pass."""
    ns = namespaces["ours"]
    report = nightly_report(ns, context(seed))
    assert report["by type"] == {
        "COMPLETED": ["rpt-0", "rpt-2", "rpt-4"],
        "FAILED": ["rpt-1", "rpt-5"],
    }
    assert [len(page) for page in report["pages"]] == [3, 3, 1]
    assert report["even"] == ["rpt-0", "rpt-2", "rpt-4", "rpt-6"]
    data = states_with_data(ns, context(seed))
    assert all(entry[2] is None for entry in data["history"])
    assert data["kept locally"][3] == "42"
    errors = error_handling(ns, context(seed))
    assert errors[0] == ("not found", True) and errors[2] == ("missing flow run", 409)
    serialised = serialise_runs(ns, context(seed))
    assert serialised["round trip equal"] and serialised["state back"]
    assert serialised["input types"] == ["parameter", "constant"]
