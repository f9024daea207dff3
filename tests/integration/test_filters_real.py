"""Every filter class, every sort order and paging of ``read_task_runs`` on a real server.

A module fixture builds a small world (two flows, a deployment, four flow runs including a
subflow, six task runs) whose names are unique to this run. Each case's expected result
is the set of task-run names it must return; the harness restricts every query to the
world's task-run ids so that other tests' data cannot leak in.
"""

import datetime
import itertools
import pathlib
import uuid
from typing import Any, Callable, Dict, List, Set, Tuple

import msgspec
import pytest
from support.helpers import installed_prefect, prefect_is_older

from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import FeatureNotSupported
from orchestration_client.filters import (
    DeploymentFilter,
    DeploymentFilterConcurrencyLimit,
    DeploymentFilterId,
    DeploymentFilterName,
    DeploymentFilterTags,
    DeploymentFilterWorkQueueName,
    FlowFilter,
    FlowFilterId,
    FlowFilterName,
    FlowFilterTags,
    FlowRunFilter,
    FlowRunFilterCreatedBy,
    FlowRunFilterDeploymentId,
    FlowRunFilterEndTime,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterFlowVersion,
    FlowRunFilterId,
    FlowRunFilterIdempotencyKey,
    FlowRunFilterName,
    FlowRunFilterNextScheduledStartTime,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterParentTaskRunId,
    FlowRunFilterStartTime,
    FlowRunFilterState,
    FlowRunFilterStateName,
    FlowRunFilterStateType,
    FlowRunFilterTags,
    FlowRunFilterWorkQueueName,
    Operator,
    TaskRunFilter,
    TaskRunFilterEndTime,
    TaskRunFilterFlowRunId,
    TaskRunFilterId,
    TaskRunFilterName,
    TaskRunFilterStartTime,
    TaskRunFilterState,
    TaskRunFilterStateName,
    TaskRunFilterStateType,
    TaskRunFilterSubFlowRuns,
    TaskRunFilterTags,
)
from orchestration_client.schemas import StateType, Task
from orchestration_client.sorting import TaskRunSort
from orchestration_client.states import Completed, Running

pytestmark = pytest.mark.integration

NOW = datetime.datetime.now(datetime.timezone.utc)
EPOCH = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
SOON = NOW + datetime.timedelta(minutes=30)


class World:
    def __init__(self, client: SyncPrefectClient, seed: Any) -> None:
        self.w = w = uuid.uuid4().hex[:8]
        self.flow_a = seed.flow(f"flow-a-{w}", tags=[f"ftag-{w}"])
        self.flow_b = seed.flow(f"flow-b-{w}")
        self.dep = seed.deployment(
            self.flow_a["id"], f"dep-{w}", tags=[f"dtag-{w}"], work_queue_name=f"wq-{w}"
        )
        self.fr1 = seed.flow_run(
            self.flow_a["id"],
            name=f"fr1-{w}",
            tags=[f"rtag-{w}"],
            deployment_id=self.dep["id"],
            flow_version=f"v1-{w}",
            idempotency_key=f"idem-{w}",
            work_queue_name=f"wq-{w}",
        )
        self.fr2 = seed.flow_run(self.flow_b["id"], name=f"fr2-{w}")
        later = (NOW + datetime.timedelta(hours=1)).isoformat()
        self.fr3 = seed.flow_run(
            self.flow_b["id"],
            name=f"fr3-{w}",
            state={"type": "SCHEDULED", "state_details": {"scheduled_time": later}},
        )
        self.runs: Dict[str, Any] = {}

        def run(name: str, flow_run: Any, tags: List[str]) -> Any:
            task = Task(name=f"{name}-{w}", tags=tags)
            created = client.create_task_run(
                task, flow_run["id"] if flow_run else None, "0", name=f"{name}-{w}"
            )
            self.runs[name] = created
            return created

        t1 = run("t1", self.fr1, [f"alpha-{w}", f"shared-{w}"])
        client.set_task_run_state(t1.id, Running())
        t2 = run("t2", self.fr1, [f"beta-{w}", f"shared-{w}"])
        client.set_task_run_state(t2.id, Running())
        run("t3", self.fr2, [])
        run("t4", self.fr3, [])
        run("t5", None, [f"alpha-{w}"])
        self.child = seed.flow_run(
            self.flow_b["id"], name=f"child-{w}", parent_task_run_id=str(t1.id)
        )
        run("tc", self.child, [])
        # Completed only now: on the real server, starting a RUNNING subflow under a
        # task run moves that task run back to Running.
        client.set_task_run_state(t1.id, Completed())
        self.ids = [r.id for r in self.runs.values()]

    def id(self, name: str) -> Any:
        return self.runs[name].id

    def names(self, *short: str) -> Set[str]:
        return {f"{name}-{self.w}" for name in short}


@pytest.fixture(scope="module")
def client(api_url: str) -> Any:
    with SyncPrefectClient(api_url) as client:
        yield client


@pytest.fixture(scope="module")
def world(client: SyncPrefectClient, seed: Any) -> World:
    return World(client, seed)


def query(client: SyncPrefectClient, world: World, **kwargs: Any) -> List[Any]:
    """read_task_runs restricted to the world's task runs."""
    restrict = TaskRunFilterId(any_=world.ids)
    task_filter = kwargs.get("task_run_filter")
    if task_filter is None:
        kwargs["task_run_filter"] = TaskRunFilter(id=restrict)
    elif task_filter.operator == Operator.or_:
        # An id restriction inside an or_ filter would widen it; restrict by flow run.
        flow_runs = [world.fr1["id"], world.fr2["id"], world.fr3["id"], world.child["id"]]
        kwargs["flow_run_filter"] = FlowRunFilter(id=FlowRunFilterId(any_=flow_runs))
    elif task_filter.id is None:
        kwargs["task_run_filter"] = msgspec.structs.replace(task_filter, id=restrict)
    return client.read_task_runs(**kwargs)


Case = Tuple[str, Callable[[World], Dict[str, Any]], Tuple[str, ...]]
WITH_FLOW_RUN = ("t1", "t2", "t3", "t4", "tc")

CASES: List[Case] = [
    # flows
    (
        "flow id",
        lambda W: {"flow_filter": FlowFilter(id=FlowFilterId(any_=[W.flow_a["id"]]))},
        ("t1", "t2"),
    ),
    (
        "flow name any",
        lambda W: {"flow_filter": FlowFilter(name=FlowFilterName(any_=[W.flow_a["name"]]))},
        ("t1", "t2"),
    ),
    (
        "flow name like",
        lambda W: {"flow_filter": FlowFilter(name=FlowFilterName(like_=f"b-{W.w}"))},
        ("t3", "t4", "tc"),
    ),
    (
        "flow tags all",
        lambda W: {"flow_filter": FlowFilter(tags=FlowFilterTags(all_=[f"ftag-{W.w}"]))},
        ("t1", "t2"),
    ),
    (
        "flow tags is_null",
        lambda W: {"flow_filter": FlowFilter(tags=FlowFilterTags(is_null_=True))},
        ("t3", "t4", "tc"),
    ),
    ("empty flow filter drops orphans", lambda W: {"flow_filter": FlowFilter()}, WITH_FLOW_RUN),
    (
        "flow or_",
        lambda W: {
            "flow_filter": FlowFilter(
                operator=Operator.or_,
                id=FlowFilterId(any_=[W.flow_a["id"]]),
                name=FlowFilterName(any_=[W.flow_b["name"]]),
            )
        },
        WITH_FLOW_RUN,
    ),
    # flow runs
    (
        "flow run id",
        lambda W: {"flow_run_filter": FlowRunFilter(id=FlowRunFilterId(any_=[W.fr1["id"]]))},
        ("t1", "t2"),
    ),
    (
        "flow run id not_any",
        lambda W: {"flow_run_filter": FlowRunFilter(id=FlowRunFilterId(not_any_=[W.fr1["id"]]))},
        ("t3", "t4", "tc"),
    ),
    (
        "flow run name any",
        lambda W: {"flow_run_filter": FlowRunFilter(name=FlowRunFilterName(any_=[f"fr2-{W.w}"]))},
        ("t3",),
    ),
    (
        "flow run name like",
        lambda W: {"flow_run_filter": FlowRunFilter(name=FlowRunFilterName(like_=f"fr3-{W.w}"))},
        ("t4",),
    ),
    (
        "flow run tags all",
        lambda W: {"flow_run_filter": FlowRunFilter(tags=FlowRunFilterTags(all_=[f"rtag-{W.w}"]))},
        ("t1", "t2"),
    ),
    (
        "flow run tags any",
        lambda W: {
            "flow_run_filter": FlowRunFilter(tags=FlowRunFilterTags(any_=[f"rtag-{W.w}", "nope"]))
        },
        ("t1", "t2"),
    ),
    (
        "flow run tags is_null",
        lambda W: {"flow_run_filter": FlowRunFilter(tags=FlowRunFilterTags(is_null_=True))},
        ("t3", "t4", "tc"),
    ),
    (
        "flow run deployment id",
        lambda W: {
            "flow_run_filter": FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=[W.dep["id"]])
            )
        },
        ("t1", "t2"),
    ),
    (
        "flow run deployment is_null",
        lambda W: {
            "flow_run_filter": FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(is_null_=True))
        },
        ("t3", "t4", "tc"),
    ),
    (
        "flow run work queue",
        lambda W: {
            "flow_run_filter": FlowRunFilter(
                work_queue_name=FlowRunFilterWorkQueueName(any_=[f"wq-{W.w}"])
            )
        },
        ("t1", "t2"),
    ),
    (
        "flow run state type",
        lambda W: {
            "flow_run_filter": FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
            )
        },
        ("t4",),
    ),
    (
        "flow run state type not_any",
        lambda W: {
            "flow_run_filter": FlowRunFilter(
                state=FlowRunFilterState(
                    type=FlowRunFilterStateType(not_any_=[StateType.SCHEDULED])
                )
            )
        },
        ("t1", "t2", "t3", "tc"),
    ),
    (
        "flow run state name",
        lambda W: {
            "flow_run_filter": FlowRunFilter(
                state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Scheduled"]))
            )
        },
        ("t4",),
    ),
    (
        "flow run state name not_any",
        lambda W: {
            "flow_run_filter": FlowRunFilter(
                state=FlowRunFilterState(name=FlowRunFilterStateName(not_any_=["Scheduled"]))
            )
        },
        ("t1", "t2", "t3", "tc"),
    ),
    (
        "flow run version",
        lambda W: {
            "flow_run_filter": FlowRunFilter(
                flow_version=FlowRunFilterFlowVersion(any_=[f"v1-{W.w}"])
            )
        },
        ("t1", "t2"),
    ),
    (
        "flow run start is_null",
        lambda W: {
            "flow_run_filter": FlowRunFilter(start_time=FlowRunFilterStartTime(is_null_=True))
        },
        ("t4",),
    ),
    # Real server: after_ also matches a run that has not started (fr3, scheduled later),
    # unlike is_null_ above: the comparison falls back to the expected start time.
    (
        "flow run start after",
        lambda W: {
            "flow_run_filter": FlowRunFilter(start_time=FlowRunFilterStartTime(after_=EPOCH))
        },
        WITH_FLOW_RUN,
    ),
    (
        "flow run end is_null",
        lambda W: {"flow_run_filter": FlowRunFilter(end_time=FlowRunFilterEndTime(is_null_=True))},
        WITH_FLOW_RUN,
    ),
    (
        "flow run expected start",
        lambda W: {
            "flow_run_filter": FlowRunFilter(
                expected_start_time=FlowRunFilterExpectedStartTime(after_=SOON)
            )
        },
        ("t4",),
    ),
    (
        "flow run next scheduled",
        lambda W: {
            "flow_run_filter": FlowRunFilter(
                next_scheduled_start_time=FlowRunFilterNextScheduledStartTime(after_=SOON)
            )
        },
        ("t4",),
    ),
    (
        "flow run parent flow run",
        lambda W: {
            "flow_run_filter": FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[W.fr1["id"]])
            )
        },
        ("tc",),
    ),
    (
        "flow run parent task run",
        lambda W: {
            "flow_run_filter": FlowRunFilter(
                parent_task_run_id=FlowRunFilterParentTaskRunId(any_=[W.id("t1")])
            )
        },
        ("tc",),
    ),
    (
        "flow run parent task run is_null",
        lambda W: {
            "flow_run_filter": FlowRunFilter(
                parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=True)
            )
        },
        ("t1", "t2", "t3", "t4"),
    ),
    (
        "flow run idempotency key",
        lambda W: {
            "flow_run_filter": FlowRunFilter(
                idempotency_key=FlowRunFilterIdempotencyKey(any_=[f"idem-{W.w}"])
            )
        },
        ("t1", "t2"),
    ),
    (
        "flow run created by is_null",
        lambda W: {
            "flow_run_filter": FlowRunFilter(created_by=FlowRunFilterCreatedBy(is_null_=True))
        },
        WITH_FLOW_RUN,
    ),
    # task runs
    (
        "task run id",
        lambda W: {
            "task_run_filter": TaskRunFilter(id=TaskRunFilterId(any_=[W.id("t1"), W.id("t3")]))
        },
        ("t1", "t3"),
    ),
    (
        "task run name any",
        lambda W: {"task_run_filter": TaskRunFilter(name=TaskRunFilterName(any_=[f"t2-{W.w}"]))},
        ("t2",),
    ),
    (
        "task run name like",
        lambda W: {"task_run_filter": TaskRunFilter(name=TaskRunFilterName(like_=f"T5-{W.w}"))},
        ("t5",),
    ),
    (
        "task run tags all",
        lambda W: {"task_run_filter": TaskRunFilter(tags=TaskRunFilterTags(all_=[f"alpha-{W.w}"]))},
        ("t1", "t5"),
    ),
    (
        "task run tags all of two",
        lambda W: {
            "task_run_filter": TaskRunFilter(
                tags=TaskRunFilterTags(all_=[f"alpha-{W.w}", f"shared-{W.w}"])
            )
        },
        ("t1",),
    ),
    (
        "task run tags is_null",
        lambda W: {"task_run_filter": TaskRunFilter(tags=TaskRunFilterTags(is_null_=True))},
        ("t3", "t4", "tc"),
    ),
    (
        "task run state type",
        lambda W: {
            "task_run_filter": TaskRunFilter(
                state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.COMPLETED]))
            )
        },
        ("t1",),
    ),
    (
        "task run state name",
        lambda W: {
            "task_run_filter": TaskRunFilter(
                state=TaskRunFilterState(name=TaskRunFilterStateName(any_=["Running"]))
            )
        },
        ("t2",),
    ),
    (
        "task run start is_null false",
        lambda W: {
            "task_run_filter": TaskRunFilter(start_time=TaskRunFilterStartTime(is_null_=False))
        },
        ("t1", "t2"),
    ),
    (
        "task run start after",
        lambda W: {
            "task_run_filter": TaskRunFilter(
                start_time=TaskRunFilterStartTime(after_=EPOCH, before_=SOON)
            )
        },
        ("t1", "t2"),
    ),
    (
        "task run end is_null false",
        lambda W: {"task_run_filter": TaskRunFilter(end_time=TaskRunFilterEndTime(is_null_=False))},
        ("t1",),
    ),
    (
        "task run end before",
        lambda W: {"task_run_filter": TaskRunFilter(end_time=TaskRunFilterEndTime(before_=SOON))},
        ("t1",),
    ),
    (
        "task run subflow exists",
        lambda W: {
            "task_run_filter": TaskRunFilter(subflow_runs=TaskRunFilterSubFlowRuns(exists_=True))
        },
        ("t1",),
    ),
    (
        "task run flow run id",
        lambda W: {
            "task_run_filter": TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[W.fr2["id"]]))
        },
        ("t3",),
    ),
    (
        "task run flow run is_null",
        lambda W: {
            "task_run_filter": TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(is_null_=True))
        },
        ("t5",),
    ),
    (
        "task run flow run default means has one",
        lambda W: {"task_run_filter": TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId())},
        WITH_FLOW_RUN,
    ),
    (
        "task run or_",
        lambda W: {
            "task_run_filter": TaskRunFilter(
                operator=Operator.or_,
                name=TaskRunFilterName(any_=[f"t1-{W.w}"]),
                tags=TaskRunFilterTags(all_=[f"beta-{W.w}"]),
            )
        },
        ("t1", "t2"),
    ),
    # deployments
    (
        "deployment id",
        lambda W: {
            "deployment_filter": DeploymentFilter(id=DeploymentFilterId(any_=[W.dep["id"]]))
        },
        ("t1", "t2"),
    ),
    (
        "deployment id not_any",
        lambda W: {
            "deployment_filter": DeploymentFilter(id=DeploymentFilterId(not_any_=[W.dep["id"]]))
        },
        (),
    ),
    (
        "deployment name any",
        lambda W: {
            "deployment_filter": DeploymentFilter(name=DeploymentFilterName(any_=[f"dep-{W.w}"]))
        },
        ("t1", "t2"),
    ),
    (
        "deployment name like",
        lambda W: {"deployment_filter": DeploymentFilter(name=DeploymentFilterName(like_=W.w))},
        ("t1", "t2"),
    ),
    (
        "deployment tags all",
        lambda W: {
            "deployment_filter": DeploymentFilter(tags=DeploymentFilterTags(all_=[f"dtag-{W.w}"]))
        },
        ("t1", "t2"),
    ),
    (
        "deployment tags any",
        lambda W: {
            "deployment_filter": DeploymentFilter(
                tags=DeploymentFilterTags(any_=[f"dtag-{W.w}", "nope"])
            )
        },
        ("t1", "t2"),
    ),
    (
        "deployment work queue",
        lambda W: {
            "deployment_filter": DeploymentFilter(
                work_queue_name=DeploymentFilterWorkQueueName(any_=[f"wq-{W.w}"])
            )
        },
        ("t1", "t2"),
    ),
    (
        "deployment concurrency is_null",
        lambda W: {
            "deployment_filter": DeploymentFilter(
                concurrency_limit=DeploymentFilterConcurrencyLimit(is_null_=True)
            )
        },
        ("t1", "t2"),
    ),
    # all four at once are ANDed
    (
        "all four",
        lambda W: {
            "flow_filter": FlowFilter(id=FlowFilterId(any_=[W.flow_a["id"]])),
            "flow_run_filter": FlowRunFilter(id=FlowRunFilterId(any_=[W.fr1["id"]])),
            "task_run_filter": TaskRunFilter(name=TaskRunFilterName(any_=[f"t2-{W.w}"])),
            "deployment_filter": DeploymentFilter(id=DeploymentFilterId(any_=[W.dep["id"]])),
        },
        ("t2",),
    ),
]


@pytest.mark.parametrize("build, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_filter(
    client: SyncPrefectClient,
    world: World,
    build: Callable[[World], Dict[str, Any]],
    expected: Tuple[str, ...],
) -> None:
    try:
        found = {run.name for run in query(client, world, **build(world))}
    except FeatureNotSupported as exc:  # an older embedded server (Python 3.9 or 3.10)
        newest_needed = tuple(int(part) for part in exc.minimum_version.split("."))
        installed = installed_prefect()
        assert installed is not None and installed < newest_needed, exc
        assert exc.server_version == ".".join(map(str, installed)), exc
        return
    assert found == world.names(*expected)


def test_every_public_filter_class_is_exercised() -> None:
    import orchestration_client.filters as filters

    source = pathlib.Path(__file__).read_text()
    cases = source[source.index("CASES: List[Case]") : source.index("def test_filter(")]
    unused = [name for name in filters.__all__ if f"{name}(" not in cases and name != "Operator"]
    assert unused == []


def test_sort_orders(client: SyncPrefectClient, world: World) -> None:
    names = sorted(run.name for run in query(client, world))
    assert [r.name for r in query(client, world, sort=TaskRunSort.NAME_ASC)] == names
    assert [r.name for r in query(client, world, sort="NAME_DESC")] == names[::-1]
    by_id = [r.id for r in query(client, world, sort=TaskRunSort.ID_DESC)]
    assert by_id == sorted(by_id, key=str, reverse=True)
    assert [r.id for r in query(client, world)] == by_id  # ID_DESC is the server default
    expected = [
        r.expected_start_time
        for r in query(client, world, sort=TaskRunSort.EXPECTED_START_TIME_ASC)
    ]
    assert expected == sorted(expected)  # type: ignore[type-var]
    expected_desc = [
        r.expected_start_time
        for r in query(client, world, sort=TaskRunSort.EXPECTED_START_TIME_DESC)
    ]
    assert expected_desc == sorted(expected_desc, reverse=True)  # type: ignore[type-var]
    assert query(client, world, sort=TaskRunSort.END_TIME_DESC)[0].name == f"t1-{world.w}"
    assert len(query(client, world, sort=TaskRunSort.NEXT_SCHEDULED_START_TIME_ASC)) == 6


def test_duration_sorts(client: SyncPrefectClient, world: World) -> None:
    """DURATION_* came with Prefect 3.9; an older server (the embedded one on Python 3.9
    and 3.10) refuses them, and the client says which version has them."""
    if prefect_is_older():
        for sort in (TaskRunSort.DURATION_DESC, TaskRunSort.DURATION_ASC):
            with pytest.raises(FeatureNotSupported, match=r"needs Prefect 3\.9 or later"):
                query(client, world, sort=sort)
        return
    durations = [r.estimated_run_time for r in query(client, world, sort=TaskRunSort.DURATION_DESC)]
    assert durations == sorted(durations, reverse=True)
    ascending = [r.estimated_run_time for r in query(client, world, sort=TaskRunSort.DURATION_ASC)]
    assert ascending == sorted(ascending)


def test_limit_and_offset_page_through(client: SyncPrefectClient, world: World) -> None:
    everything = [r.id for r in query(client, world, sort=TaskRunSort.NAME_ASC)]
    assert len(everything) == 6
    pages = [
        [r.id for r in query(client, world, sort=TaskRunSort.NAME_ASC, limit=4, offset=offset)]
        for offset in (0, 4)
    ]
    assert [len(page) for page in pages] == [4, 2]
    assert list(itertools.chain(*pages)) == everything
    assert query(client, world, limit=0) == []
    assert query(client, world, offset=6) == []


def test_limit_over_the_server_maximum_is_the_servers_422(client: SyncPrefectClient) -> None:
    from orchestration_client.exceptions import PrefectHTTPStatusError

    with pytest.raises(PrefectHTTPStatusError, match="less than or equal to 200") as caught:
        client.read_task_runs(limit=201)
    assert caught.value.status_code == 422


def test_bad_filter_arguments_fail_before_sending(client: SyncPrefectClient) -> None:
    from orchestration_client.exceptions import RequestValidationError

    with pytest.raises(TypeError, match="task_run_filter must be a TaskRunFilter"):
        client.read_task_runs(task_run_filter=FlowFilter())  # type: ignore[arg-type]
    with pytest.raises(RequestValidationError, match=r"TaskRunFilterId\.any_ must hold UUIDs"):
        client.read_task_runs(task_run_filter=TaskRunFilter(id=TaskRunFilterId(any_=["x"])))  # type: ignore[list-item]
    with pytest.raises(ValueError, match="limit must be >= 0"):
        client.read_task_runs(limit=-1)
    with pytest.raises(ValueError, match="offset must be >= 0"):
        client.read_task_runs(offset=-5)
    with pytest.raises(TypeError, match="limit must be an int"):
        client.read_task_runs(limit=True)
    with pytest.raises(ValueError, match="sort must be one of"):
        client.read_task_runs(sort="SIDEWAYS")
