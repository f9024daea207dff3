"""The compatibility checks: every client member and every filter class, against one real
server, for our client or Prefect's (the same code drives both, through a namespace of
their modules).

A small world (flows, a deployment, flow runs, task runs) is seeded with plain HTTP, so it
does not depend on the client under test. Each filter check compares the names of the task
runs returned, restricted to the world's, with the expected set. A check that needs a newer
server (``since``) passes on an older one only if the client raises a clear
``FeatureNotSupported`` naming that feature (ours does; Prefect's cannot).
"""

import datetime
import types
import uuid
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Set, Tuple

import requests

NOW = datetime.datetime.now(datetime.timezone.utc)
EPOCH = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
SOON = NOW + datetime.timedelta(minutes=30)
WITH_FLOW_RUN = ("t1", "t2", "t3", "t4", "tc")


def ours() -> types.SimpleNamespace:
    import orchestration_client.filters as filters
    import orchestration_client.schemas as schemas
    import orchestration_client.sorting as sorting
    import orchestration_client.states as states
    from orchestration_client import SyncPrefectClient

    def make_task(name: str, tags: List[str]) -> Any:
        return schemas.Task(name=name, tags=tags)

    return types.SimpleNamespace(name="ours", client=SyncPrefectClient, filters=filters,
                                 schemas=schemas, sorting=sorting, states=states,
                                 make_task=make_task)  # fmt: skip


def prefects() -> types.SimpleNamespace:
    import prefect.client.orchestration as orchestration
    import prefect.client.schemas.filters as filters
    import prefect.client.schemas.objects as schemas
    import prefect.client.schemas.sorting as sorting
    import prefect.states as states
    from prefect import Task

    def make_task(name: str, tags: List[str]) -> Any:
        return Task(fn=lambda: None, name=name, tags=tags)

    return types.SimpleNamespace(name="prefect", client=orchestration.SyncPrefectClient,
                                 filters=filters, schemas=schemas, sorting=sorting,
                                 states=states, make_task=make_task)  # fmt: skip


class World:
    """Seeded with plain HTTP: names are unique to this world."""

    def __init__(self, api_url: str, server_version: str) -> None:
        self.api = api_url
        self.server_version = server_version
        self.http = requests.Session()
        self.w = w = uuid.uuid4().hex[:8]
        self.flow_a = self.post("/flows/", {"name": f"flow-a-{w}", "tags": [f"ftag-{w}"]})
        self.flow_b = self.post("/flows/", {"name": f"flow-b-{w}", "tags": []})
        self.dep = self.post("/deployments/", {"flow_id": self.flow_a["id"], "name": f"dep-{w}",
                                               "tags": [f"dtag-{w}"], "work_queue_name": f"wq-{w}"})  # fmt: skip
        # Through the deployment: 3.0's plain flow-run create has no work_queue_name.
        self.fr1 = self.post(f"/deployments/{self.dep['id']}/create_flow_run",
                             {"name": f"fr1-{w}", "tags": [f"rtag-{w}"], "work_queue_name": f"wq-{w}",
                              "idempotency_key": f"idem-{w}", "enforce_parameter_schema": False})  # fmt: skip
        self.http.patch(
            f"{self.api}/flow_runs/{self.fr1['id']}", json={"flow_version": f"v1-{w}"}, timeout=30
        ).raise_for_status()
        self.post(f"/flow_runs/{self.fr1['id']}/set_state",
                  {"state": {"type": "RUNNING"}, "force": True})  # fmt: skip
        self.fr2 = self.flow_run(self.flow_b, name=f"fr2-{w}")
        later = (NOW + datetime.timedelta(hours=1)).isoformat()
        self.fr3 = self.flow_run(self.flow_b, name=f"fr3-{w}",
                                 state={"type": "SCHEDULED", "state_details": {"scheduled_time": later}})  # fmt: skip
        self.runs: Dict[str, Dict[str, Any]] = {}
        self.task_run("t1", self.fr1, [f"alpha-{w}", f"shared-{w}"], "RUNNING")
        self.task_run("t2", self.fr1, [f"beta-{w}", f"shared-{w}"], "RUNNING")
        self.task_run("t3", self.fr2, [])
        self.task_run("t4", self.fr3, [])
        self.task_run("t5", None, [f"alpha-{w}"])
        self.child = self.flow_run(self.flow_b, name=f"child-{w}",
                                   parent_task_run_id=self.runs["t1"]["id"])  # fmt: skip
        self.task_run("tc", self.child, [])
        # Completed only now: starting a running subflow under t1 moves t1 back to Running.
        self.set_state("t1", "COMPLETED")
        self.ids = {run["id"] for run in self.runs.values()}

    def post(self, path: str, body: Dict[str, Any]) -> Dict[str, Any]:
        reply = self.http.post(self.api + path, json=body, timeout=30)
        reply.raise_for_status()
        result: Dict[str, Any] = reply.json()
        return result

    def flow_run(self, flow: Dict[str, Any], **fields: Any) -> Dict[str, Any]:
        return self.post("/flow_runs/", {"flow_id": flow["id"], "state": {"type": "RUNNING"},
                                         **fields})  # fmt: skip

    def task_run(self, name: str, flow_run: Optional[Dict[str, Any]], tags: List[str],
                 state: Optional[str] = None) -> None:  # fmt: skip
        body = {"name": f"{name}-{self.w}", "task_key": f"{name}-{self.w}", "dynamic_key": "0",
                "flow_run_id": flow_run["id"] if flow_run else None, "tags": tags,
                "state": {"type": "PENDING"}}  # fmt: skip
        self.runs[name] = self.post("/task_runs/", body)
        if state:
            self.set_state(name, state)

    def set_state(self, name: str, state: str) -> None:
        self.post(f"/task_runs/{self.runs[name]['id']}/set_state", {"state": {"type": state}})

    def id(self, name: str) -> str:
        return str(self.runs[name]["id"])

    def names(self, runs: List[Any]) -> Set[str]:
        """The short names of the world's task runs among ``runs``."""
        return {run.name.rsplit("-", 1)[0] for run in runs if str(run.id) in self.ids}


class Check(NamedTuple):
    name: str
    run: Callable[[Any, types.SimpleNamespace, World], None]
    feature: Optional[str] = None  # the FeatureNotSupported name, when it needs a newer server
    since: Optional[str] = None


def _filter_check(name: str, build: Callable[[Any, World], Dict[str, Any]],
                  expected: Tuple[str, ...], feature: Optional[str] = None,
                  since: Optional[str] = None) -> Check:  # fmt: skip
    def run(client: Any, ns: types.SimpleNamespace, world: World) -> None:
        got = world.names(client.read_task_runs(**build(ns.filters, world)))
        assert got == set(expected), f"returned {sorted(got)}, expected {sorted(expected)}"

    return Check(name, run, feature, since)


# ---- members ----------------------------------------------------------------------------------


def _healthcheck(client: Any, ns: Any, world: World) -> None:
    assert client.api_healthcheck() is None


def _hello(client: Any, ns: Any, world: World) -> None:
    assert client.hello().status_code == 200


def _api_version(client: Any, ns: Any, world: World) -> None:
    assert client.api_version() == world.server_version


def _client_version(client: Any, ns: Any, world: World) -> None:
    assert client.client_version().startswith("3.")


def _version_mismatch(client: Any, ns: Any, world: World) -> None:
    client.raise_for_api_version_mismatch()


def _create_minimal(client: Any, ns: Any, world: World) -> None:
    run = client.create_task_run(ns.make_task(f"m-{world.w}", []), None, "0")
    assert run.flow_run_id is None and run.state.type.value == "PENDING"


def _create_everything(client: Any, ns: Any, world: World) -> None:
    s = ns.schemas
    run = client.create_task_run(
        ns.make_task(f"full-{world.w}", ["a"]), world.fr2["id"], "dyn", id=uuid.uuid4(),
        name=f"full-{world.w}", extra_tags=["b"], state=ns.states.Running(message="m"),
        task_inputs={"x": [s.TaskRunResult(id=world.id("t3")), s.Parameter(name="p"),
                           s.Constant(type="int")]},
    )  # fmt: skip
    assert run.name == f"full-{world.w}" and sorted(run.tags) == ["a", "b"]
    assert run.state.type.value == "RUNNING" and set(run.task_inputs) == {"x"}


def _read_task_run(client: Any, ns: Any, world: World) -> None:
    assert str(client.read_task_run(world.id("t2")).id) == world.id("t2")


def _read_task_runs_paging(client: Any, ns: Any, world: World) -> None:
    sort = ns.sorting.TaskRunSort
    for order in ("ID_DESC", "EXPECTED_START_TIME_ASC", "EXPECTED_START_TIME_DESC", "NAME_ASC",
                  "NAME_DESC", "NEXT_SCHEDULED_START_TIME_ASC", "END_TIME_DESC"):  # fmt: skip
        client.read_task_runs(sort=getattr(sort, order), limit=200)
    runs = client.read_task_runs(sort=sort.NAME_ASC, limit=200, offset=0)
    names = [r.name for r in runs]
    assert names == sorted(names), "NAME_ASC is not sorted"
    assert len(client.read_task_runs(limit=2, offset=1)) == 2


def _set_name(client: Any, ns: Any, world: World) -> None:
    run = client.create_task_run(ns.make_task(f"rn-{world.w}", []), None, "0")
    client.set_task_run_name(run.id, f"renamed-{world.w}")
    assert client.read_task_run(run.id).name == f"renamed-{world.w}"
    client.set_task_run_name(run.id, None)
    assert client.read_task_run(run.id).name not in (f"renamed-{world.w}", None)


def _set_state(client: Any, ns: Any, world: World) -> None:
    run = client.create_task_run(ns.make_task(f"st-{world.w}", []), None, "0")
    for state in (ns.states.Running(), ns.states.Completed(message="done")):
        result = client.set_task_run_state(run.id, state)
        assert result.status.value == "ACCEPT", result
    forced = client.set_task_run_state(run.id, ns.states.Pending(), force=True)
    assert forced.status.value == "ACCEPT"


def _read_states(client: Any, ns: Any, world: World) -> None:
    # t1 went Pending, Running, (Running again when its subflow started,) Completed.
    types_ = [s.type.value for s in client.read_task_run_states(world.id("t1"))]
    assert types_[0] == "PENDING" and types_[-1] == "COMPLETED" and "RUNNING" in types_, types_


MEMBERS: List[Check] = [
    Check("api_healthcheck", _healthcheck), Check("hello", _hello),
    Check("api_version", _api_version), Check("client_version", _client_version),
    Check("raise_for_api_version_mismatch", _version_mismatch),
    Check("create_task_run", _create_minimal),
    Check("create_task_run, every argument", _create_everything),
    Check("read_task_run", _read_task_run),
    Check("read_task_runs, sorts and paging", _read_task_runs_paging),
    Check("set_task_run_name", _set_name), Check("set_task_run_state", _set_state),
    Check("read_task_run_states", _read_states),
]  # fmt: skip


# ---- every filter class ------------------------------------------------------------------------

F = Any
W = World

FILTERS: List[Check] = [
    _filter_check("FlowFilter", lambda F, W: {"flow_filter": F.FlowFilter()}, WITH_FLOW_RUN),
    _filter_check("FlowFilterId", lambda F, W: {"flow_filter": F.FlowFilter(id=F.FlowFilterId(any_=[W.flow_a["id"]]))}, ("t1", "t2")),
    _filter_check("FlowFilterName", lambda F, W: {"flow_filter": F.FlowFilter(name=F.FlowFilterName(like_=f"b-{W.w}"))}, ("t3", "t4", "tc")),
    _filter_check("FlowFilterTags", lambda F, W: {"flow_filter": F.FlowFilter(tags=F.FlowFilterTags(all_=[f"ftag-{W.w}"]))}, ("t1", "t2")),
    _filter_check("FlowRunFilter", lambda F, W: {"flow_run_filter": F.FlowRunFilter(operator=F.Operator.or_, name=F.FlowRunFilterName(any_=[f"fr2-{W.w}"]), flow_version=F.FlowRunFilterFlowVersion(any_=[f"v1-{W.w}"]))}, ("t1", "t2", "t3")),
    _filter_check("FlowRunFilterId", lambda F, W: {"flow_run_filter": F.FlowRunFilter(id=F.FlowRunFilterId(not_any_=[W.fr1["id"]]))}, ("t3", "t4", "tc")),
    _filter_check("FlowRunFilterName", lambda F, W: {"flow_run_filter": F.FlowRunFilter(name=F.FlowRunFilterName(like_=f"fr3-{W.w}"))}, ("t4",)),
    _filter_check("FlowRunFilterTags", lambda F, W: {"flow_run_filter": F.FlowRunFilter(tags=F.FlowRunFilterTags(all_=[f"rtag-{W.w}"]))}, ("t1", "t2")),
    _filter_check("FlowRunFilterDeploymentId", lambda F, W: {"flow_run_filter": F.FlowRunFilter(deployment_id=F.FlowRunFilterDeploymentId(any_=[W.dep["id"]]))}, ("t1", "t2")),
    _filter_check("FlowRunFilterWorkQueueName", lambda F, W: {"flow_run_filter": F.FlowRunFilter(work_queue_name=F.FlowRunFilterWorkQueueName(any_=[f"wq-{W.w}"]))}, ("t1", "t2")),
    _filter_check("FlowRunFilterState", lambda F, W: {"flow_run_filter": F.FlowRunFilter(state=F.FlowRunFilterState(operator=F.Operator.or_, type=F.FlowRunFilterStateType(any_=["SCHEDULED"]), name=F.FlowRunFilterStateName(any_=["Nope"])))}, ("t4",)),
    _filter_check("FlowRunFilterStateType", lambda F, W: {"flow_run_filter": F.FlowRunFilter(state=F.FlowRunFilterState(type=F.FlowRunFilterStateType(not_any_=["SCHEDULED"])))}, ("t1", "t2", "t3", "tc")),
    _filter_check("FlowRunFilterStateName", lambda F, W: {"flow_run_filter": F.FlowRunFilter(state=F.FlowRunFilterState(name=F.FlowRunFilterStateName(any_=["Scheduled"])))}, ("t4",)),
    _filter_check("FlowRunFilterFlowVersion", lambda F, W: {"flow_run_filter": F.FlowRunFilter(flow_version=F.FlowRunFilterFlowVersion(any_=[f"v1-{W.w}"]))}, ("t1", "t2")),
    _filter_check("FlowRunFilterStartTime", lambda F, W: {"flow_run_filter": F.FlowRunFilter(start_time=F.FlowRunFilterStartTime(is_null_=True))}, ("t4",)),
    _filter_check("FlowRunFilterEndTime", lambda F, W: {"flow_run_filter": F.FlowRunFilter(end_time=F.FlowRunFilterEndTime(is_null_=True))}, WITH_FLOW_RUN),
    _filter_check("FlowRunFilterExpectedStartTime", lambda F, W: {"flow_run_filter": F.FlowRunFilter(expected_start_time=F.FlowRunFilterExpectedStartTime(after_=SOON))}, ("t4",)),
    _filter_check("FlowRunFilterNextScheduledStartTime", lambda F, W: {"flow_run_filter": F.FlowRunFilter(next_scheduled_start_time=F.FlowRunFilterNextScheduledStartTime(after_=SOON))}, ("t4",)),
    _filter_check("FlowRunFilterParentFlowRunId", lambda F, W: {"flow_run_filter": F.FlowRunFilter(parent_flow_run_id=F.FlowRunFilterParentFlowRunId(any_=[W.fr1["id"]]))}, ("tc",)),
    _filter_check("FlowRunFilterParentTaskRunId", lambda F, W: {"flow_run_filter": F.FlowRunFilter(parent_task_run_id=F.FlowRunFilterParentTaskRunId(any_=[W.id("t1")]))}, ("tc",)),
    _filter_check("FlowRunFilterIdempotencyKey", lambda F, W: {"flow_run_filter": F.FlowRunFilter(idempotency_key=F.FlowRunFilterIdempotencyKey(any_=[f"idem-{W.w}"]))}, ("t1", "t2")),
    _filter_check("FlowRunFilterCreatedBy", lambda F, W: {"flow_run_filter": F.FlowRunFilter(created_by=F.FlowRunFilterCreatedBy(is_null_=True))}, WITH_FLOW_RUN,
                  "the FlowRunFilter.created_by filter", "3.6"),
    _filter_check("TaskRunFilter", lambda F, W: {"task_run_filter": F.TaskRunFilter(operator=F.Operator.or_, name=F.TaskRunFilterName(any_=[f"t1-{W.w}"]), tags=F.TaskRunFilterTags(all_=[f"beta-{W.w}"]))}, ("t1", "t2")),
    _filter_check("TaskRunFilterId", lambda F, W: {"task_run_filter": F.TaskRunFilter(id=F.TaskRunFilterId(any_=[W.id("t1"), W.id("t3")]))}, ("t1", "t3")),
    _filter_check("TaskRunFilterName", lambda F, W: {"task_run_filter": F.TaskRunFilter(name=F.TaskRunFilterName(like_=f"T5-{W.w}"))}, ("t5",)),
    _filter_check("TaskRunFilterTags", lambda F, W: {"task_run_filter": F.TaskRunFilter(tags=F.TaskRunFilterTags(all_=[f"alpha-{W.w}", f"shared-{W.w}"]))}, ("t1",)),
    _filter_check("TaskRunFilterState", lambda F, W: {"task_run_filter": F.TaskRunFilter(state=F.TaskRunFilterState(operator=F.Operator.or_, type=F.TaskRunFilterStateType(any_=["COMPLETED"]), name=F.TaskRunFilterStateName(any_=["Running"])))}, ("t1", "t2")),
    _filter_check("TaskRunFilterStateType", lambda F, W: {"task_run_filter": F.TaskRunFilter(state=F.TaskRunFilterState(type=F.TaskRunFilterStateType(any_=["COMPLETED"])))}, ("t1",)),
    _filter_check("TaskRunFilterStateName", lambda F, W: {"task_run_filter": F.TaskRunFilter(state=F.TaskRunFilterState(name=F.TaskRunFilterStateName(any_=["Running"])))}, ("t2",)),
    _filter_check("TaskRunFilterStartTime", lambda F, W: {"task_run_filter": F.TaskRunFilter(start_time=F.TaskRunFilterStartTime(after_=EPOCH, before_=SOON))}, ("t1", "t2")),
    _filter_check("TaskRunFilterEndTime", lambda F, W: {"task_run_filter": F.TaskRunFilter(end_time=F.TaskRunFilterEndTime(before_=SOON))}, ("t1",),
                  "the TaskRunFilter.end_time filter", "3.6"),
    _filter_check("TaskRunFilterSubFlowRuns", lambda F, W: {"task_run_filter": F.TaskRunFilter(subflow_runs=F.TaskRunFilterSubFlowRuns(exists_=True))}, ("t1",)),
    _filter_check("TaskRunFilterFlowRunId", lambda F, W: {"task_run_filter": F.TaskRunFilter(flow_run_id=F.TaskRunFilterFlowRunId(is_null_=True))}, ("t5",)),
    _filter_check("DeploymentFilter", lambda F, W: {"deployment_filter": F.DeploymentFilter()}, ("t1", "t2")),
    _filter_check("DeploymentFilterId", lambda F, W: {"deployment_filter": F.DeploymentFilter(id=F.DeploymentFilterId(any_=[W.dep["id"]]))}, ("t1", "t2")),
    _filter_check("DeploymentFilterName", lambda F, W: {"deployment_filter": F.DeploymentFilter(name=F.DeploymentFilterName(like_=W.w))}, ("t1", "t2")),
    _filter_check("DeploymentFilterTags", lambda F, W: {"deployment_filter": F.DeploymentFilter(tags=F.DeploymentFilterTags(all_=[f"dtag-{W.w}"]))}, ("t1", "t2")),
    _filter_check("DeploymentFilterWorkQueueName", lambda F, W: {"deployment_filter": F.DeploymentFilter(work_queue_name=F.DeploymentFilterWorkQueueName(any_=[f"wq-{W.w}"]))}, ("t1", "t2")),
    _filter_check("DeploymentFilterConcurrencyLimit", lambda F, W: {"deployment_filter": F.DeploymentFilter(concurrency_limit=F.DeploymentFilterConcurrencyLimit(is_null_=True))}, ("t1", "t2")),
]  # fmt: skip


# ---- features newer than 3.0 beyond whole filter classes ----------------------------------------


def _duration_sort(client: Any, ns: Any, world: World) -> None:
    runs = client.read_task_runs(sort=ns.sorting.TaskRunSort.DURATION_DESC, limit=200)
    assert world.names(runs) >= {"t1", "t2"}


def _flow_run_input(client: Any, ns: Any, world: World) -> None:
    run = client.create_task_run(ns.make_task(f"fri-{world.w}", []), None, "0",
                                 task_inputs={"x": [ns.schemas.FlowRunResult(id=world.fr2["id"])]})  # fmt: skip
    assert type(run.task_inputs["x"][0]).__name__ == "FlowRunResult"


FEATURES: List[Check] = [
    _filter_check("FlowRunFilterTags.any_", lambda F, W: {"flow_run_filter": F.FlowRunFilter(tags=F.FlowRunFilterTags(any_=[f"rtag-{W.w}", "nope"]))}, ("t1", "t2"),
                  "FlowRunFilterTags.any_", "3.1"),
    _filter_check("DeploymentFilterTags.any_", lambda F, W: {"deployment_filter": F.DeploymentFilter(tags=F.DeploymentFilterTags(any_=[f"dtag-{W.w}", "nope"]))}, ("t1", "t2"),
                  "DeploymentFilterTags.any_", "3.1"),
    _filter_check("DeploymentFilterId.not_any_", lambda F, W: {"deployment_filter": F.DeploymentFilter(id=F.DeploymentFilterId(not_any_=[W.dep["id"]]))}, (),
                  "DeploymentFilterId.not_any_", "3.4"),
    Check("a FlowRunResult task input", _flow_run_input, "a FlowRunResult task input", "3.4"),
    Check("DURATION_DESC sort", _duration_sort, "the DURATION_ASC/DURATION_DESC task-run sorts", "3.9"),
]  # fmt: skip

ALL: List[Check] = [*FILTERS, *FEATURES, *MEMBERS]


def version_tuple(version: str) -> Tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())


def evaluate(check: Check, client: Any, ns: types.SimpleNamespace, world: World) -> str:
    """``"ok"``, ``"clear: ..."`` (a too-old server, named as such), or ``"FAIL: ..."``."""
    too_old = check.since is not None and (
        version_tuple(world.server_version) < version_tuple(check.since)
    )
    try:
        check.run(client, ns, world)
    except Exception as exc:
        features = [name for name, _ in getattr(exc, "features", [])]
        if too_old and check.feature in features:
            return f"clear: {check.feature} needs {check.since}"
        text = " ".join(str(exc).split())
        return f"FAIL: {type(exc).__name__}: {text[:600]}"
    if too_old:
        return f"FAIL: the server accepted {check.feature} before {check.since}"
    return "ok"
