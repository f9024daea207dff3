"""``set_task_run_state`` after ambiguous failures (HTTP faked with ``responses`` and a stub
server), and the transport's ``idempotent=False`` sends. The same behaviour on a real server
behind a fault-injecting proxy: tests/integration/test_exactly_once_real.py."""

import datetime
import email.utils
import json
import logging
import pickle
import uuid
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import requests
import responses
from support.stub_server import RESET, StubServer, json_reply
from urllib3.exceptions import NewConnectionError

from orchestration_client import SyncPrefectClient
from orchestration_client._calls._exactly_once import _maybe_replaced
from orchestration_client._http import _retry as retry_module
from orchestration_client._models._bodies import StateCreate
from orchestration_client.exceptions import (
    APIConnectionError,
    APITimeoutError,
    OrchestrationClientError,
    PrefectHTTPStatusError,
    StateChangeOutcomeUnknown,
)
from orchestration_client.schemas import SetStateStatus, State, StateDetails, StateType
from orchestration_client.states import Failed, Running

API = "http://127.0.0.1:4200/api"
RUN = uuid.UUID("5190444c-4e28-470d-bef5-1fe012903c23")
SET_STATE = f"{API}/task_runs/{RUN}/set_state"
HISTORY = f"{API}/task_run_states/"


@pytest.fixture(autouse=True)
def settings(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """Quiet, quick retries; every back-off wait is recorded instead of slept."""
    monkeypatch.setenv("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")
    monkeypatch.setenv("PREFECT_CLIENT_RETRY_JITTER_FACTOR", "0")
    monkeypatch.setenv("PREFECT_CLIENT_MAX_RETRIES", "3")
    waits: List[float] = []
    monkeypatch.setattr(retry_module.time, "sleep", waits.append)
    return waits


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def state_json(name: str, transition_id: Any = None, **details: Any) -> Dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "type": name.upper() if name != "AwaitingRetry" else "SCHEDULED",
        "name": name,
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "state_details": {"task_run_id": str(RUN), "transition_id": transition_id, **details},
    }


class Server:
    """A fake set_state endpoint: scripted statuses, and a history that holds whatever
    proposal the script says was committed."""

    def __init__(self, mock: responses.RequestsMock, script: List[Tuple[int, bool]]) -> None:
        self.script = script  # (status to answer, whether the proposal was committed)
        self.history = [state_json("Pending")]
        self.bodies: List[Dict[str, Any]] = []
        self.history_reads = 0
        self.history_fails = 0
        self.history_500s = 0
        self.history_refused = 0
        mock.add_callback(responses.POST, SET_STATE, callback=self.set_state)
        mock.add_callback(responses.GET, HISTORY, callback=self.read_history)

    def set_state(self, request: requests.PreparedRequest) -> Tuple[int, Dict[str, str], str]:
        body = json.loads(request.body or b"{}")
        self.bodies.append(body)
        status, committed = self.script.pop(0) if self.script else (200, True)
        state = {**body["state"], "id": str(uuid.uuid4()),
                 "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        if committed:
            self.history.append(state)
        if status == 200:
            reply = {"state": state, "status": "ACCEPT", "details": {"type": "accept_details"}}
            return 200, {}, json.dumps(reply)
        if status == 500:  # what Prefect's server says when its database fails
            return 500, {}, json.dumps({"exception_message": "Internal Server Error"})
        return status, {"Retry-After": "1"} if status == 503 else {}, "{}"

    def read_history(self, request: requests.PreparedRequest) -> Tuple[int, Dict[str, str], str]:
        self.history_reads += 1
        if self.history_fails:
            self.history_fails -= 1
            raise requests.ConnectionError("connection reset by peer")
        if self.history_refused:
            self.history_refused -= 1
            raise requests.ConnectionError(NewConnectionError(None, "connection refused"))  # type: ignore[arg-type]
        if self.history_500s:
            self.history_500s -= 1
            return 500, {}, json.dumps({"exception_message": "Internal Server Error"})
        date = email.utils.formatdate(usegmt=True)
        return 200, {"Date": date}, json.dumps(self.history)


def test_committed_then_502_is_not_sent_again(mock: responses.RequestsMock,
                                              settings: List[float]) -> None:
    server = Server(mock, [(502, True)])
    result = SyncPrefectClient(API).set_task_run_state(RUN, Running())
    assert result.status == SetStateStatus.ACCEPT and result.state is not None
    assert len(server.bodies) == 1 and server.history_reads == 1
    assert str(result.state.id) == server.history[-1]["id"]
    assert settings == [2.0]  # Prefect's first back-off before looking


def test_not_committed_is_sent_again_with_the_same_transition_id(
    mock: responses.RequestsMock,
) -> None:
    server = Server(mock, [(502, False), (502, False)])
    result = SyncPrefectClient(API).set_task_run_state(RUN, Running())
    assert result.status == SetStateStatus.ACCEPT
    assert len(server.bodies) == 3 and server.history_reads == 2
    ids = {body["state"]["state_details"]["transition_id"] for body in server.bodies}
    assert len(ids) == 1 and uuid.UUID(ids.pop()).version == 4
    assert [s["name"] for s in server.history] == ["Pending", "Running"]


def test_retry_after_is_honoured_between_attempts(mock: responses.RequestsMock,
                                                  settings: List[float]) -> None:
    Server(mock, [(503, False)])
    SyncPrefectClient(API).set_task_run_state(RUN, Running())
    assert settings == [1.0]


def test_budget_spent_and_surely_not_applied_raises_the_last_error(
    mock: responses.RequestsMock, settings: List[float]
) -> None:
    server = Server(mock, [(502, False)] * 10)
    with pytest.raises(PrefectHTTPStatusError, match="502") as caught:
        SyncPrefectClient(API).set_task_run_state(RUN, Running())
    assert not isinstance(caught.value, StateChangeOutcomeUnknown)
    assert len(server.bodies) == 4  # the first send and PREFECT_CLIENT_MAX_RETRIES=3 more
    assert server.history_reads == 4  # the last read is made at once, with no budget left
    assert settings == [2.0, 4.0, 8.0]


def test_history_unreadable_means_outcome_unknown(mock: responses.RequestsMock) -> None:
    server = Server(mock, [(502, True)])
    server.history_fails = 100
    with pytest.raises(StateChangeOutcomeUnknown, match="may or may not have been applied") as caught:
        SyncPrefectClient(API).set_task_run_state(RUN, Running())
    error = caught.value
    assert isinstance(error, OrchestrationClientError) and isinstance(error, requests.ConnectionError)
    assert error.task_run_id == RUN
    assert str(error.transition_id) == server.bodies[0]["state"]["state_details"]["transition_id"]
    assert len(server.bodies) == 1  # never sent again
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.transition_id == error.transition_id


def test_history_reply_malformed_means_outcome_unknown(mock: responses.RequestsMock) -> None:
    server = Server(mock, [(502, True)])
    mock.replace(responses.GET, HISTORY, body=b"<html>proxy error</html>", status=200)
    with pytest.raises(StateChangeOutcomeUnknown, match="reading its state history failed"):
        SyncPrefectClient(API).set_task_run_state(RUN, Running())
    assert len(server.bodies) == 1


def test_history_readable_again_within_the_budget(mock: responses.RequestsMock) -> None:
    server = Server(mock, [(502, True)])
    server.history_fails = 2
    result = SyncPrefectClient(API).set_task_run_state(RUN, Running())
    assert result.status == SetStateStatus.ACCEPT and len(server.bodies) == 1


def test_non_retryable_status_is_raised_at_once(mock: responses.RequestsMock) -> None:
    server = Server(mock, [(409, False)])
    with pytest.raises(PrefectHTTPStatusError, match="409"):
        SyncPrefectClient(API).set_task_run_state(RUN, Running())
    assert len(server.bodies) == 1 and server.history_reads == 0


def test_the_callers_state_is_not_stamped(mock: responses.RequestsMock) -> None:
    server = Server(mock, [])
    state = Running()
    SyncPrefectClient(API).set_task_run_state(RUN, state)
    assert state.state_details.transition_id is None
    assert state.state_details.task_run_id == RUN  # as in Prefect
    assert server.bodies[0]["state"]["state_details"]["transition_id"] is not None


def test_server_replacement_during_the_call_is_unknown_but_not_before() -> None:
    proposed = StateCreate(type=StateType.FAILED, state_details=StateDetails())
    now = datetime.datetime.now(datetime.timezone.utc)
    date = email.utils.format_datetime(now, usegmt=True)
    awaiting = State(type=StateType.SCHEDULED, name="AwaitingRetry", timestamp=now)
    assert _maybe_replaced([awaiting], proposed, date, elapsed=0.5)
    assert _maybe_replaced([awaiting], proposed, None, elapsed=0.5)  # no clock: assume worst
    old = State(type=StateType.SCHEDULED, timestamp=now - datetime.timedelta(seconds=30))
    assert not _maybe_replaced([old], proposed, date, elapsed=0.5)
    ours = State(type=StateType.SCHEDULED, timestamp=now,
                 state_details=StateDetails(transition_id=uuid.uuid4()))
    assert not _maybe_replaced([ours], proposed, date, elapsed=0.5)  # a client wrote it
    running = StateCreate(type=StateType.RUNNING, state_details=StateDetails())
    pending = State(type=StateType.PENDING, timestamp=now)
    assert not _maybe_replaced([pending], running, date, elapsed=0.5)  # not a substitute
    cached = State(type=StateType.COMPLETED, name="Cached", timestamp=now,
                   state_details=StateDetails(transition_id=uuid.uuid4()))
    keyed = StateCreate(type=StateType.COMPLETED, state_details=StateDetails(cache_key="k"))
    assert _maybe_replaced([cached], keyed, date, elapsed=0.5)


# ---- the transport's idempotent=False ------------------------------------------------------


@pytest.fixture
def stub() -> Iterator[StubServer]:
    stub = StubServer(fallback=json_reply(200, b"true"))
    yield stub
    stub.stop()


def test_non_idempotent_send_does_not_retry_statuses(stub: StubServer) -> None:
    client = SyncPrefectClient(stub.api_url)
    stub.script += [json_reply(502), json_reply(502)]
    with pytest.raises(PrefectHTTPStatusError, match="502"):
        client._transport.request("POST", "/x", content=b"{}", idempotent=False)
    assert len(stub.seen) == 1
    client._transport.request("POST", "/x", content=b"{}")  # idempotent: the 502 is retried
    assert len(stub.seen) == 3


def test_non_idempotent_send_does_not_retry_a_reset_after_sending(stub: StubServer) -> None:
    client = SyncPrefectClient(stub.api_url)
    client.hello()
    stub.script.append(RESET)
    with pytest.raises(APIConnectionError):
        client._transport.request("POST", "/x", content=b"{}", idempotent=False)
    assert len(stub.seen) == 2
    stub.script.append(RESET)
    client._transport.request("POST", "/x", content=b"{}")
    assert len(stub.seen) == 4


def test_non_idempotent_send_retries_refused_connections(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stub = StubServer()
    url = stub.api_url
    stub.stop()  # nothing listens there now: every connection is refused
    client = SyncPrefectClient(url)
    with caplog.at_level(logging.DEBUG, logger="orchestration_client"), \
            pytest.raises(APIConnectionError) as caught:
        client.set_task_run_state(RUN, Failed())
    assert not isinstance(caught.value, StateChangeOutcomeUnknown)  # surely not applied
    retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retry ")]
    assert len(retries) == 3 and all("NewConnectionError" in m for m in retries)


# ---- 500s (issue 19): a database restart behind the server ---------------------------------


class FakeClock:
    """Stands in for the ``time`` module in ``_retry``: sleeping moves the clock on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: List[float] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1.7e9 + self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(retry_module, "time", fake)
    return fake


def test_a_500_after_the_commit_is_settled_from_the_history(
    mock: responses.RequestsMock, settings: List[float]
) -> None:
    server = Server(mock, [(500, True)])
    result = SyncPrefectClient(API).set_task_run_state(RUN, Running())
    assert result.status == SetStateStatus.ACCEPT and result.state is not None
    assert len(server.bodies) == 1 and server.history_reads == 1
    assert str(result.state.id) == server.history[-1]["id"]
    assert settings == [2.0]


def test_a_500_before_the_commit_is_proposed_again(mock: responses.RequestsMock) -> None:
    server = Server(mock, [(500, False), (500, False)])
    result = SyncPrefectClient(API).set_task_run_state(RUN, Running())
    assert result.status == SetStateStatus.ACCEPT
    assert len(server.bodies) == 3 and server.history_reads == 2
    assert [s["name"] for s in server.history] == ["Pending", "Running"]


def test_500s_on_the_history_read_are_retried_too(mock: responses.RequestsMock) -> None:
    """Before the fix, a 500 on the history read (the database was still down) made the
    outcome unknown; now the read is repeated within the same limit."""
    server = Server(mock, [(500, True)])
    server.history_500s = 2
    result = SyncPrefectClient(API).set_task_run_state(RUN, Running())
    assert result.status == SetStateStatus.ACCEPT
    assert len(server.bodies) == 1 and server.history_reads == 3


def test_a_lasting_500_is_raised_after_the_limit_with_the_servers_detail(
    mock: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    monkeypatch.setenv("PREFECT_CLIENT_MAX_RETRIES", "10")  # the 20 s limit ends it first
    server = Server(mock, [(500, False)] * 50)
    with pytest.raises(PrefectHTTPStatusError) as caught:
        SyncPrefectClient(API).set_task_run_state(RUN, Running())
    error = caught.value
    assert not isinstance(error, StateChangeOutcomeUnknown)
    assert error.status_code == 500 and error.detail == {"exception_message": "Internal Server Error"}
    assert error.retries == 4 and "gave up after 4 retries" in str(error)
    assert clock.slept == [2.0, 4.0, 8.0, 6.0] and sum(clock.slept) == 20.0
    assert len(server.bodies) == 5 and server.history_reads == 5  # the last look is at once
    assert [s["name"] for s in server.history] == ["Pending"]


def test_no_retries_means_no_500_is_proposed_again_but_the_history_still_tells(
    mock: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch, settings: List[float]
) -> None:
    monkeypatch.setenv("PREFECT_CLIENT_MAX_RETRIES", "0")
    server = Server(mock, [(500, True)])
    assert SyncPrefectClient(API).set_task_run_state(RUN, Running()).status == SetStateStatus.ACCEPT
    server.script = [(500, False)]
    with pytest.raises(PrefectHTTPStatusError, match="500"):
        SyncPrefectClient(API).set_task_run_state(RUN, Running())
    assert len(server.bodies) == 2 and server.history_reads == 2 and settings == []


def test_500_in_extra_codes_keeps_prefects_count_and_stays_exactly_once(
    mock: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    monkeypatch.setenv("PREFECT_CLIENT_RETRY_EXTRA_CODES", "500")
    monkeypatch.setenv("PREFECT_CLIENT_MAX_RETRIES", "5")
    server = Server(mock, [(500, False)] * 3 + [(500, True)])
    result = SyncPrefectClient(API).set_task_run_state(RUN, Running())
    assert result.status == SetStateStatus.ACCEPT
    assert clock.slept == [2.0, 4.0, 8.0, 16.0]  # past 20 s: by count, as the user asked
    assert len(server.bodies) == 4 and [s["name"] for s in server.history] == ["Pending", "Running"]


def test_a_history_read_on_a_connection_the_server_closed_is_tried_again_at_once(
    mock: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch, settings: List[float]
) -> None:
    """After a 500, uvicorn closes the connection: the next request on it is reset. With no
    retries left, the one look at the history still tells (it used to be 'unknown')."""
    monkeypatch.setenv("PREFECT_CLIENT_MAX_RETRIES", "0")
    server = Server(mock, [(500, True)])
    server.history_fails = 1
    assert SyncPrefectClient(API).set_task_run_state(RUN, Running()).status == SetStateStatus.ACCEPT
    assert server.history_reads == 2 and settings == []
    server.script, server.history_fails = [(500, True)], 2  # twice: it is not a stale connection
    with pytest.raises(StateChangeOutcomeUnknown):
        SyncPrefectClient(API).set_task_run_state(RUN, Running())

    server.script, server.history_refused = [(500, True)], 1  # refused: not tried again here
    with pytest.raises(StateChangeOutcomeUnknown):
        SyncPrefectClient(API).set_task_run_state(RUN, Running())
    assert server.history_reads == 2 + 2 + 1


@pytest.mark.parametrize("token_reply", ["500", "timeout"])
def test_a_csrf_token_that_cannot_be_had_is_raised_as_it_is_and_nothing_is_sent(
    mock: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch, token_reply: str
) -> None:
    """The token is fetched before the proposal is sent: its failure is not the proposal's
    (no history read, no StateChangeOutcomeUnknown, no second token fetch)."""
    monkeypatch.setenv("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "true")
    monkeypatch.setenv("ORCHESTRATION_CLIENT_RETRY_500_SECONDS", "0")  # a 500 at once
    server = Server(mock, [])
    fetches: List[int] = []

    def csrf_token(request: requests.PreparedRequest) -> Tuple[int, Dict[str, str], str]:
        fetches.append(1)
        if token_reply == "timeout":
            raise requests.ReadTimeout("read timed out")
        return 500, {}, json.dumps({"exception_message": "Internal Server Error"})

    mock.add_callback(responses.GET, f"{API}/csrf-token", callback=csrf_token)
    with pytest.raises(OrchestrationClientError) as caught:
        SyncPrefectClient(API).set_task_run_state(RUN, Running())
    error = caught.value
    assert not isinstance(error, StateChangeOutcomeUnknown)
    if token_reply == "500":
        assert isinstance(error, PrefectHTTPStatusError) and error.status_code == 500
        assert "/csrf-token" in error.url
    else:
        assert isinstance(error, APITimeoutError)
        assert f"POST /task_runs/{RUN}/set_state was not sent" in str(error)
    assert server.bodies == [] and server.history_reads == 0 and len(fetches) == 1
