"""State data on a real server, differentially: the same transitions, proposed with states
that carry data, give the same outcomes and histories with our client and Prefect's.

Prefect's client never sends a state's data (only a persisted result's metadata), so the
server's rules never read values they cannot handle. Sending ``Completed(data=42)`` as
given made the next transition of that run fail with a 500 (a rule calls ``data.get``).
"""

import math
import uuid
from typing import Any, Dict, Iterator, List, Tuple

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

Step = Tuple[str, Dict[str, Any], bool]  # constructor name, its kwargs, force


def boom() -> ValueError:
    return ValueError("boom")


SCENARIOS: Dict[str, List[Step]] = {
    "data on every state, then re-proposals after COMPLETED": [
        ("Running", {"data": {"x": 1}}, False),
        ("Completed", {"data": 42}, False),
        ("Running", {}, False),
        ("Failed", {"data": boom()}, False),
        ("Completed", {"data": {"rows": 3}}, False),
        ("Running", {"data": [1, 2]}, True),
        ("Completed", {"data": float("nan")}, False),
    ],
    "a failure with an exception as data, retried": [
        ("Running", {}, False),
        ("Failed", {"data": boom(), "message": "boom"}, False),
        ("Running", {"data": "retry"}, False),
        ("Completed", {"data": {"rows": 3}}, False),
        ("Failed", {"data": float("inf")}, False),
        ("Cancelled", {"data": {"storage_key": "nowhere"}}, False),
    ],
    "data that looks like result metadata": [
        ("Running", {}, False),
        ("Completed", {"data": {"storage_key": "s3://x", "serializer": {"type": "json"}}}, False),
        ("Running", {}, False),
        ("Pending", {"data": {"type": "unpersisted"}}, True),
        ("Running", {"data": math.pi}, False),
        ("Completed", {"data": None}, False),
    ],
}


@pytest.fixture(scope="module")
def sides(api_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    patch = pytest.MonkeyPatch()
    patch.setenv("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    patch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    import prefect.states
    from prefect import task
    from prefect.client.orchestration import SyncPrefectClient as PrefectClient

    import orchestration_client.states
    from orchestration_client import SyncPrefectClient

    @task(retries=1)
    def data_task() -> None: ...

    with SyncPrefectClient(api_url) as ours, PrefectClient(api_url) as theirs:
        yield {
            "ours": (ours, orchestration_client.states, data_task),
            "prefect": (theirs, prefect.states, data_task),
        }
    patch.undo()


def play(side: Tuple[Any, Any, Any], flow_run_id: str, steps: List[Step]) -> Dict[str, Any]:
    client, states, task = side
    run = client.create_task_run(task, flow_run_id, uuid.uuid4().hex)
    outcomes = []
    for name, kwargs, force in steps:
        state = getattr(states, name)(**kwargs)
        result = client.set_task_run_state(run.id, state, force=force)
        if states.__name__.startswith("orchestration_client"):  # data stays local
            unpersisted = kwargs.get("data") == {"type": "unpersisted"}  # None, as in Prefect
            assert state.data is (None if unpersisted else kwargs.get("data"))
        shown = result.state
        outcomes.append(
            (
                result.status.value,
                type(result.details).__name__,
                getattr(result.details, "reason", None),
                shown and (shown.type.value, shown.name, shown.message, shown.data),
            )
        )
    history = [
        (s.type.value, s.name, s.message, s.data) for s in client.read_task_run_states(run.id)
    ]
    final = client.read_task_run(run.id)
    return {
        "outcomes": outcomes,
        "history": history,
        "run": (final.state_type.value, final.state_name, final.run_count),
    }


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_same_outcomes_and_history_as_prefect(
    scenario: str, sides: Dict[str, Any], seed: Any
) -> None:
    flow_run_id = seed.flow_run(seed.flow()["id"])["id"]
    mine = play(sides["ours"], flow_run_id, SCENARIOS[scenario])
    theirs = play(sides["prefect"], flow_run_id, SCENARIOS[scenario])
    assert mine == theirs
    assert all(data is None for *_, data in mine["history"]), "no state data was stored"
