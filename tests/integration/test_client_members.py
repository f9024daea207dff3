"""Every documented SyncPrefectClient member against a real Prefect 3 server."""

import datetime
import importlib.metadata
import logging
import uuid
from typing import Any, Dict, Iterator

import pytest

from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import (
    APIConnectionError,
    ObjectNotFound,
    PrefectHTTPStatusError,
    RequestValidationError,
)
from orchestration_client.schemas import (
    Constant,
    FlowRunResult,
    Parameter,
    SetStateStatus,
    StateAbortDetails,
    StateAcceptDetails,
    StateRejectDetails,
    StateType,
    StateWaitDetails,
    Task,
    TaskRunResult,
)
from orchestration_client.states import (
    AwaitingRetry,
    Completed,
    Crashed,
    Failed,
    Pending,
    Running,
    Scheduled,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def client(api_url: str) -> Iterator[SyncPrefectClient]:
    with SyncPrefectClient(api_url) as client:
        yield client


@pytest.fixture(scope="module")
def running_flow_run(seed: Any) -> Dict[str, Any]:
    return seed.flow_run(seed.flow()["id"])


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---- server, versions ---------------------------------------------------------------------


def test_api_url_has_trailing_slash(api_url: str) -> None:
    assert SyncPrefectClient(api_url).api_url == api_url + "/"
    assert SyncPrefectClient(api_url + "/").api_url == api_url + "/"


def test_healthcheck_hello_and_versions(client: SyncPrefectClient) -> None:
    assert client.api_healthcheck() is None
    hello = client.hello()
    assert hello.status_code == 200 and hello.json() == "👋"
    assert client.api_version() == importlib.metadata.version("prefect")
    assert client.client_version() == "3.9.1"
    client.raise_for_api_version_mismatch()  # same major: no error


def test_healthcheck_returns_the_error_for_a_dead_server() -> None:
    from support.prefect_server import free_port

    with SyncPrefectClient(f"http://127.0.0.1:{free_port()}/api") as client:
        error = client.api_healthcheck()
        assert isinstance(error, APIConnectionError)
        assert "127.0.0.1" in str(error)
        with pytest.raises(
            RuntimeError, match=r"Failed to reach API at http://127\.0\.0\.1:\d+/api/$"
        ):
            client.raise_for_api_version_mismatch()


def test_older_server_warns_and_other_major_fails(
    client: SyncPrefectClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(client, "client_version", lambda: "3.99.0")
    with caplog.at_level(logging.WARNING, logger="orchestration_client"):
        client.raise_for_api_version_mismatch()
    assert "older than the 3.99.0" in caplog.text
    monkeypatch.setattr(client, "client_version", lambda: "4.0.0")
    with pytest.raises(RuntimeError, match="Major versions must match"):
        client.raise_for_api_version_mismatch()


# ---- create / read ---------------------------------------------------------------------------


def test_create_without_id_gets_a_server_id_and_pending_state(client: SyncPrefectClient) -> None:
    run = client.create_task_run(Task(name=unique()), flow_run_id=None, dynamic_key=0)
    assert isinstance(run.id, uuid.UUID)
    assert run.dynamic_key == "0"
    assert run.state is not None and run.state.type == StateType.PENDING
    assert run.state_type == StateType.PENDING and run.state_name == "Pending"
    assert run.flow_run_id is None and run.labels == {}
    assert run.total_run_time == datetime.timedelta(0)
    assert run.name  # the server picks a random name when none is given


def test_create_with_client_id_and_every_field(
    client: SyncPrefectClient, running_flow_run: Dict[str, Any]
) -> None:
    run_id, other = uuid.uuid4(), uuid.uuid4()
    task = Task(
        name=unique(),
        tags=["a", "b"],
        version="1.0",
        retries=2,
        retry_delay_seconds=[1.5, 3],
        retry_jitter_factor=0.5,
    )
    inputs = {
        "x": [
            TaskRunResult(id=other),
            Parameter(name="p"),
            Constant(type="int"),
            FlowRunResult(id=uuid.UUID(running_flow_run["id"])),
        ]
    }
    run = client.create_task_run(
        task,
        running_flow_run["id"],
        "k",
        id=run_id,
        name="named",
        extra_tags=["b", "c"],
        state=Running(),
        task_inputs=inputs,
    )
    assert run.id == run_id and run.name == "named"
    assert run.flow_run_id == uuid.UUID(running_flow_run["id"])
    assert sorted(run.tags) == ["a", "b", "c"]
    assert run.task_key == task.task_key and run.task_version == "1.0"
    assert run.empirical_policy.retries == 2
    assert run.empirical_policy.retry_delay == [1, 3]  # truncated like Prefect
    assert run.empirical_policy.retry_jitter_factor == 0.5
    assert run.task_inputs == inputs
    assert run.state is not None and run.state.type == StateType.RUNNING
    # The server adds labels for the flow run and (not in the wire reference) the flow.
    assert run.labels is not None
    assert run.labels["prefect.flow-run.id"] == running_flow_run["id"]
    assert run.labels["prefect.flow.id"] == running_flow_run["flow_id"]
    read = client.read_task_run(run_id)
    assert (read.id, read.name, read.state_id, read.tags, read.task_inputs) == (
        run.id,
        run.name,
        run.state_id,
        run.tags,
        run.task_inputs,
    )


def test_repeated_create_returns_the_same_run_unchanged(
    client: SyncPrefectClient, running_flow_run: Dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    task = Task(name=unique())
    first = client.create_task_run(task, running_flow_run["id"], "same")
    with caplog.at_level(logging.WARNING, logger="orchestration_client"):
        again = client.create_task_run(task, running_flow_run["id"], "same", state=Completed(),
                                       id=uuid.uuid4())
    # Real server: an existing (flow_run_id, task_key, dynamic_key) wins over a new id.
    assert again.id == first.id
    assert f"server already had run {first.id}" in caplog.text
    assert again.state is not None and again.state.type == StateType.PENDING
    orphan = client.create_task_run(task, None, "same")
    assert orphan.id != first.id
    assert client.create_task_run(task, None, "same").id == orphan.id


def test_create_accepts_a_real_prefect_task(client: SyncPrefectClient) -> None:
    from prefect import task

    @task(tags=["from-prefect"], retries=1, retry_delay_seconds=2.5)
    def my_task() -> None: ...

    run = client.create_task_run(my_task, None, unique())
    assert run.task_key == my_task.task_key
    assert run.tags == ["from-prefect"]
    assert run.empirical_policy.retries == 1 and run.empirical_policy.retry_delay == 2


def test_create_for_a_missing_flow_run_is_a_409(client: SyncPrefectClient) -> None:
    with pytest.raises(PrefectHTTPStatusError) as caught:
        client.create_task_run(Task(name=unique()), uuid.uuid4(), "0")
    assert caught.value.status_code == 409
    assert "POST" in str(caught.value) and "/task_runs/" in str(caught.value)


def test_read_missing_run_raises_object_not_found(client: SyncPrefectClient) -> None:
    missing = uuid.uuid4()
    with pytest.raises(ObjectNotFound) as caught:
        client.read_task_run(missing)
    message = str(caught.value)
    assert str(missing) in message and "404" in message and "Task not found" in message
    assert caught.value.http_exc is caught.value and caught.value.status_code == 404


def test_bad_ids_fail_before_sending(client: SyncPrefectClient) -> None:
    with pytest.raises(ValueError, match="task_run_id must be a UUID"):
        client.read_task_run("not-a-uuid")
    with pytest.raises(TypeError, match="task_run_id must be a UUID"):
        client.read_task_run(42)  # type: ignore[arg-type]


# ---- names ----------------------------------------------------------------------------------


def test_set_task_run_name(client: SyncPrefectClient) -> None:
    run = client.create_task_run(Task(name=unique()), None, "0", name="before")
    reply = client.set_task_run_name(run.id, "after")
    assert reply.status_code == 204 and reply.content == b""
    assert client.read_task_run(run.id).name == "after"
    client.set_task_run_name(run.id, None)  # the server picks a random slug
    renamed = client.read_task_run(run.id).name
    assert renamed and renamed != "after"
    with pytest.raises(ObjectNotFound, match="Task run not found"):
        client.set_task_run_name(uuid.uuid4(), "x")


# ---- states -----------------------------------------------------------------------------------


def test_accepted_transitions_and_history_order(
    client: SyncPrefectClient, running_flow_run: Dict[str, Any]
) -> None:
    run = client.create_task_run(Task(name=unique()), running_flow_run["id"], "0")
    running = Running(message="go")
    result = client.set_task_run_state(run.id, running)
    assert result.status == SetStateStatus.ACCEPT
    assert isinstance(result.details, StateAcceptDetails)
    assert result.state is not None and result.state.type == StateType.RUNNING
    assert result.state.message == "go"
    assert result.state.state_details.task_run_id == run.id
    assert running.state_details.task_run_id == run.id  # Prefect's side effect, kept
    done = client.set_task_run_state(run.id, Completed())
    assert done.status == SetStateStatus.ACCEPT
    history = client.read_task_run_states(run.id)
    assert [state.name for state in history] == ["Pending", "Running", "Completed"]
    assert [s.timestamp for s in history] == sorted(s.timestamp for s in history)
    final = client.read_task_run(run.id)
    assert final.state_type == StateType.COMPLETED and final.run_count == 1
    assert final.start_time is not None and final.end_time is not None
    assert client.read_task_run_states(uuid.uuid4()) == []


def test_rejected_transition_returns_awaiting_retry(
    client: SyncPrefectClient, running_flow_run: Dict[str, Any]
) -> None:
    run = client.create_task_run(Task(name=unique(), retries=1), running_flow_run["id"], "0")
    client.set_task_run_state(run.id, Running())
    result = client.set_task_run_state(run.id, Failed(message="boom"))
    assert result.status == SetStateStatus.REJECT
    assert isinstance(result.details, StateRejectDetails)
    assert result.state is not None and result.state.name == "AwaitingRetry"
    assert result.state.type == StateType.SCHEDULED
    retried = client.set_task_run_state(run.id, Running())
    assert retried.state is not None and retried.state.name == "Retrying"


def test_aborted_transition_from_a_terminal_state(client: SyncPrefectClient) -> None:
    run = client.create_task_run(Task(name=unique()), None, "0")
    client.set_task_run_state(run.id, Completed(), force=True)
    result = client.set_task_run_state(run.id, Crashed())
    assert result.status == SetStateStatus.ABORT
    assert isinstance(result.details, StateAbortDetails)
    assert result.details.reason == "Run is already COMPLETED."
    # The real server sends the current state with ABORT, not null.
    assert result.state is not None and result.state.type == StateType.COMPLETED


def test_running_outside_a_running_flow_run_is_aborted(
    client: SyncPrefectClient, seed: Any
) -> None:
    flow_run = seed.flow_run(seed.flow()["id"], state={"type": "PENDING"})
    run = client.create_task_run(Task(name=unique()), flow_run["id"], "0")
    result = client.set_task_run_state(run.id, Running())
    assert result.status == SetStateStatus.ABORT
    assert "enclosing flow must be running" in (result.details.reason or "")  # type: ignore[union-attr]


def test_wait_for_a_future_scheduled_time(
    client: SyncPrefectClient, running_flow_run: Dict[str, Any]
) -> None:
    run = client.create_task_run(Task(name=unique()), running_flow_run["id"], "0")
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=10)
    client.set_task_run_state(run.id, Scheduled(scheduled_time=later), force=True)
    result = client.set_task_run_state(run.id, Running())
    assert result.status == SetStateStatus.WAIT
    assert isinstance(result.details, StateWaitDetails)
    assert 590 <= result.details.delay_seconds <= 600


def test_force_accepts_what_orchestration_would_abort(client: SyncPrefectClient) -> None:
    run = client.create_task_run(Task(name=unique()), None, "0")
    client.set_task_run_state(run.id, Completed(), force=True)
    forced = client.set_task_run_state(run.id, Crashed(), force=True)
    assert forced.status == SetStateStatus.ACCEPT
    assert forced.state is not None and forced.state.type == StateType.CRASHED
    awaiting = client.set_task_run_state(run.id, AwaitingRetry(), force=True)
    assert awaiting.state is not None and awaiting.state.name == "AwaitingRetry"
    assert awaiting.state.state_details.scheduled_time is not None


def test_set_state_for_a_missing_run(client: SyncPrefectClient) -> None:
    with pytest.raises(ObjectNotFound, match="not found"):
        client.set_task_run_state(uuid.uuid4(), Pending())


def test_wrong_state_type_fails_before_sending(client: SyncPrefectClient) -> None:
    with pytest.raises(TypeError, match="state must be a State"):
        client.set_task_run_state(uuid.uuid4(), "COMPLETED")  # type: ignore[arg-type]
    bad = Completed()
    bad.state_details.flow_run_id = "nope"  # type: ignore[assignment]
    with pytest.raises(RequestValidationError, match=r"state_details\.flow_run_id"):
        client.set_task_run_state(uuid.uuid4(), bad)


# ---- context manager ------------------------------------------------------------------------


def test_context_manager_reentry_and_no_reuse_after_close(api_url: str) -> None:
    from orchestration_client.exceptions import ClientClosedError

    client = SyncPrefectClient(api_url)
    assert client.hello().status_code == 200  # works without entering
    with client:
        with client:
            assert client.api_healthcheck() is None
        assert client.api_healthcheck() is None  # still open after the inner exit
    with pytest.raises(ClientClosedError, match="cannot be started again"), client:
        pass
    with pytest.raises(ClientClosedError):
        client.hello()
    assert isinstance(client.api_healthcheck(), ClientClosedError)
