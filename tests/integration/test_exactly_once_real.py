"""State changes are applied exactly once on a real Prefect server, with a fault-injecting
proxy (tests/support/fault_proxy.py) on 127.0.0.1 losing the replies after the server committed."""

import time
import uuid
from typing import Iterator, List

import pytest
from support.fault_proxy import FaultProxy
from support.prefect_server import PrefectServer

from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import (
    APIConnectionError,
    APITimeoutError,
    OrchestrationClientError,
    PrefectHTTPStatusError,
    StateChangeOutcomeUnknown,
)
from orchestration_client.schemas import SetStateStatus, StateAcceptDetails, StateType, Task
from orchestration_client.states import Cancelling, Completed, Failed, Running

pytestmark = pytest.mark.integration


@pytest.fixture
def proxy(prefect_server: PrefectServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(prefect_server.port)
    yield proxy
    proxy.stop()


@pytest.fixture
def client(proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncPrefectClient]:
    monkeypatch.setenv("PREFECT_CLIENT_RETRY_JITTER_FACTOR", "0")
    with SyncPrefectClient(proxy.api_url, httpx_settings={"timeout": 20}) as client:
        yield client


@pytest.fixture
def direct(api_url: str) -> Iterator[SyncPrefectClient]:
    """A client that bypasses the proxy, to read what the server really holds."""
    with SyncPrefectClient(api_url) as client:
        yield client


def new_run(client: SyncPrefectClient, **task: object) -> uuid.UUID:
    return client.create_task_run(Task(name="once", **task), None, uuid.uuid4().hex).id  # type: ignore[arg-type]


def names(client: SyncPrefectClient, run_id: uuid.UUID) -> List[str]:
    return [state.name or "" for state in client.read_task_run_states(run_id)]


@pytest.mark.parametrize("fault", ["drop", "502", "500"])
def test_lost_replies_apply_each_state_once(
    client: SyncPrefectClient, direct: SyncPrefectClient, proxy: FaultProxy, fault: str
) -> None:
    """The server commits Running and Completed, the proxy loses both replies (a reset, or a
    502 after forwarding): each state is in the history once, run_count is 1, and the
    results are the ACCEPTs the server would have sent."""
    run_id = new_run(client)
    proxy.add(fault, "POST", "/set_state", times=2)
    running = client.set_task_run_state(run_id, Running())
    completed = client.set_task_run_state(run_id, Completed())
    assert proxy.actions().count(fault) == 2  # both faults really happened
    history = direct.read_task_run_states(run_id)
    assert [s.name for s in history] == ["Pending", "Running", "Completed"]
    assert direct.read_task_run(run_id).run_count == 1
    for result, stored in zip([running, completed], history[1:]):
        assert result.status == SetStateStatus.ACCEPT
        assert isinstance(result.details, StateAcceptDetails)
        assert result.state == stored  # the same state the server holds, id and timestamp
    assert direct.read_task_run(run_id).state == completed.state


def test_accept_result_after_a_lost_reply_looks_like_a_real_one(
    client: SyncPrefectClient, direct: SyncPrefectClient, proxy: FaultProxy
) -> None:
    real = client.set_task_run_state(new_run(client), Running())
    proxy.add("drop", "POST", "/set_state")
    recovered = client.set_task_run_state(new_run(client), Running())
    assert type(recovered.details) is type(real.details)
    assert recovered.status == real.status
    assert recovered.state is not None and real.state is not None
    assert recovered.state.type == real.state.type and recovered.state.name == real.state.name
    assert recovered.state.state_details.task_run_id is not None


def test_request_that_never_reached_the_server_is_sent_again(
    client: SyncPrefectClient, direct: SyncPrefectClient, proxy: FaultProxy
) -> None:
    """A reset before forwarding: the history shows it was not applied, so it is re-sent."""
    run_id = new_run(client)
    proxy.add("refuse", "POST", "/set_state")
    result = client.set_task_run_state(run_id, Running())
    assert result.status == SetStateStatus.ACCEPT
    assert proxy.actions().count("refuse") == 1
    assert proxy.actions()[-2:] == ["pass", "pass"]  # the history read, then the re-send
    assert names(direct, run_id) == ["Pending", "Running"]


def test_outcome_unknown_when_the_server_stays_unreachable(
    direct: SyncPrefectClient, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server commits Running, the reply is lost and the proxy goes down for good: the
    client cannot find out, and says so within its retry budget."""
    monkeypatch.setenv("PREFECT_CLIENT_MAX_RETRIES", "2")
    monkeypatch.setenv("PREFECT_CLIENT_RETRY_JITTER_FACTOR", "0")
    with SyncPrefectClient(proxy.api_url, httpx_settings={"timeout": 5}) as client:
        run_id = new_run(client)
        proxy.add("drop", "POST", "/set_state", then_down=True)
        started = time.monotonic()
        with pytest.raises(StateChangeOutcomeUnknown) as caught:
            client.set_task_run_state(run_id, Running())
        elapsed = time.monotonic() - started
    error = caught.value
    assert isinstance(error, OrchestrationClientError) and isinstance(error, APIConnectionError)
    assert "may or may not have been applied" in str(error)
    assert error.task_run_id == run_id and str(error.transition_id) in str(error)
    # One budget for the whole call, history reads included: waits of 2 + 4 s (it took 24 s
    # when each history read had connection retries of its own).
    assert elapsed < 6 + 8
    # It had been applied, once, and carries the transition_id the error names.
    history = direct.read_task_run_states(run_id)
    assert [s.name for s in history] == ["Pending", "Running"]
    assert history[-1].state_details.transition_id == error.transition_id


def test_outcome_unknown_when_the_server_replaced_the_proposal(
    client: SyncPrefectClient, direct: SyncPrefectClient, proxy: FaultProxy
) -> None:
    """A Failed with retries left is committed as the server's own AwaitingRetry, which
    carries no transition_id; its reply is lost. Proposing Failed again would spend a
    retry, so the client reports the outcome as unknown instead."""
    run_id = new_run(client, retries=2)
    client.set_task_run_state(run_id, Running())
    proxy.add("drop", "POST", "/set_state")
    with pytest.raises(StateChangeOutcomeUnknown, match="wrote a state of its own"):
        client.set_task_run_state(run_id, Failed())
    assert names(direct, run_id) == ["Pending", "Running", "AwaitingRetry"]


def test_a_transition_id_already_in_the_history_is_not_mistaken_for_this_proposal(
    client: SyncPrefectClient, direct: SyncPrefectClient, proxy: FaultProxy
) -> None:
    """A state read back from the server carries the transition_id it was stored with;
    proposed again (force=True) and its reply lost, it must not be reported applied from
    the old entry: every proposal gets a fresh id."""
    run_id = new_run(client)
    first = client.set_task_run_state(run_id, Running())
    assert first.state is not None
    reread = client.read_task_run_states(run_id)[-1]
    proxy.add("drop", "POST", "/set_state")
    again = client.set_task_run_state(run_id, reread, force=True)
    assert again.state is not None and again.state.id != first.state.id
    assert again.state.state_details.transition_id != first.state.state_details.transition_id
    assert names(direct, run_id) == ["Pending", "Running", "Running"]


def test_a_504_after_the_commit_is_reported_as_applied(
    client: SyncPrefectClient, direct: SyncPrefectClient, proxy: FaultProxy
) -> None:
    """A proxy's 504 is not retried (as in Prefect), but it may follow the commit: the
    client looks at the history once and reports the ACCEPT instead of a bare 504."""
    run_id = new_run(client)
    proxy.add("504", "POST", "/set_state")
    result = client.set_task_run_state(run_id, Running())
    assert result.status.value == "ACCEPT" and result.state is not None
    assert names(direct, run_id) == ["Pending", "Running"]


def test_reusing_one_state_object_stamps_each_proposal_afresh(
    client: SyncPrefectClient, direct: SyncPrefectClient
) -> None:
    """The stamp goes on the request, not on the caller's state, so a state object proposed
    twice is two transitions (and is not mistaken for the first after a lost reply)."""
    run_id = new_run(client)
    state = Running()
    first = client.set_task_run_state(run_id, state)
    assert state.state_details.transition_id is None
    second = client.set_task_run_state(run_id, state, force=True)
    assert first.state and second.state
    assert first.state.state_details.transition_id != second.state.state_details.transition_id


def test_prefect_client_duplicates_in_the_same_scenario(
    api_url: str, direct: SyncPrefectClient, proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fault is real: Prefect 3.9.1's own client, behind the same proxy, applies the
    lost Running twice (run_count 2, a 'Rerunning' state)."""
    from prefect.client.orchestration import SyncPrefectClient as PrefectClient
    from prefect.states import Running as PrefectRunning

    run_id = new_run(direct)
    proxy.add("drop", "POST", "/set_state")
    monkeypatch.setenv("PREFECT_CLIENT_RETRY_JITTER_FACTOR", "0")
    with PrefectClient(proxy.api_url) as prefect_client:
        prefect_client.set_task_run_state(run_id, PrefectRunning())
    assert [s.type for s in direct.read_task_run_states(run_id)].count(StateType.RUNNING) == 2
    assert direct.read_task_run(run_id).run_count == 2


def test_server_answers_reach_the_caller_unchanged(
    client: SyncPrefectClient, direct: SyncPrefectClient, proxy: FaultProxy
) -> None:
    """A reply lost on an ABORT (a finished run can't be cancelled): the history shows
    nothing of ours, so the proposal is sent again and the server's ABORT comes back, as it
    would have the first time."""
    run_id = new_run(client)
    client.set_task_run_state(run_id, Running())
    client.set_task_run_state(run_id, Completed())
    proxy.add("drop", "POST", "/set_state")
    result = client.set_task_run_state(run_id, Cancelling())
    assert result.status == SetStateStatus.ABORT
    assert proxy.actions().count("drop") == 1
    assert names(direct, run_id) == ["Pending", "Running", "Completed"]




@pytest.mark.parametrize("fault", ["500", "delay"])
def test_a_csrf_token_that_cannot_be_had_fails_the_call_and_nothing_is_sent(
    direct: SyncPrefectClient, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """A client's first mutating call asks for a CSRF token (this server has CSRF off; the
    client learns that from the reply). When that request fails, for good or past the read
    timeout, the proposal was never sent: the token's error is raised, not
    StateChangeOutcomeUnknown, without a history read, and a lasting 500 is ridden out once
    (it used to count as the proposal's 500 and start a second token fetch)."""
    monkeypatch.setenv("PREFECT_CLIENT_RETRY_JITTER_FACTOR", "0")
    monkeypatch.setenv("ORCHESTRATION_CLIENT_RETRY_500_SECONDS", "3")
    run_id = new_run(direct)
    proxy.add(fault, "GET", "/csrf-token", times=100, delay_seconds=3.0)
    with SyncPrefectClient(proxy.api_url, httpx_settings={"timeout": 2}) as client:
        started = time.monotonic()
        with pytest.raises(OrchestrationClientError) as caught:
            client.set_task_run_state(run_id, Running())
        elapsed = time.monotonic() - started
    error = caught.value
    assert not isinstance(error, StateChangeOutcomeUnknown)
    if fault == "500":
        assert isinstance(error, PrefectHTTPStatusError) and "/csrf-token" in error.url
        assert elapsed < 3 + 3  # one 500 window, not two
    else:
        assert isinstance(error, APITimeoutError)
        assert f"POST /task_runs/{run_id}/set_state was not sent" in str(error)
    assert [path.split("?")[0] for _, path, _ in proxy.log] == ["/api/csrf-token"] * len(proxy.log)
    assert names(direct, run_id) == ["Pending"]
