"""500 replies, every member, over real sockets to a scripted server on 127.0.0.1 (waits are
recorded on a fake clock instead of slept), and the ``ORCHESTRATION_CLIENT_RETRY_500_SECONDS``
setting. The policy itself: test_retry.py; set_task_run_state: test_exactly_once.py; a real
server: tests/integration/test_retry_500_real.py and test_scale.py (PostgreSQL restart)."""

import logging
import uuid
from typing import Any, Callable, Iterator, List

import pytest
from support.stub_server import StubServer, json_reply

from orchestration_client import SyncPrefectClient
from orchestration_client._http import _retry as retry_module
from orchestration_client._settings._load import load_settings
from orchestration_client.exceptions import PrefectHTTPStatusError
from orchestration_client.filters import TaskRunFilter
from orchestration_client.schemas import Task

RUN_ID = uuid.UUID("5190444c-4e28-470d-bef5-1fe012903c23")
FIVE_HUNDRED = json_reply(500, b'{"exception_message":"Internal Server Error"}')


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
    monkeypatch.setenv("PREFECT_CLIENT_RETRY_JITTER_FACTOR", "0")
    return fake


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer()
    yield server
    server.stop()


def members(fixture_bytes: Callable[[str], bytes]) -> List[Any]:
    """(name, call, the reply it needs, the request it makes)."""
    run = fixture_bytes("task_run_created")
    return [
        ("api_healthcheck", lambda c: c.api_healthcheck(), json_reply(200, b"true"), "GET /api/health"),
        ("hello", lambda c: c.hello().json(), json_reply(200, b'"hi"'), "GET /api/hello"),
        ("api_version", lambda c: c.api_version(), json_reply(200, b'"3.9.1"'), "GET /api/admin/version"),
        ("read_task_run", lambda c: c.read_task_run(RUN_ID), json_reply(200, run), f"GET /api/task_runs/{RUN_ID}"),
        ("read_task_runs", lambda c: c.read_task_runs(task_run_filter=TaskRunFilter()),
         json_reply(200, fixture_bytes("task_runs_filter")), "POST /api/task_runs/filter"),
        ("read_task_run_states", lambda c: c.read_task_run_states(RUN_ID),
         json_reply(200, fixture_bytes("task_run_states")), "GET /api/task_run_states/"),
        ("create_task_run", lambda c: c.create_task_run(Task(name="t"), None, "0", id=RUN_ID),
         json_reply(201, run), "POST /api/task_runs/"),
        ("set_task_run_name", lambda c: c.set_task_run_name(RUN_ID, "n"), (204, {}, b""),
         f"PATCH /api/task_runs/{RUN_ID}"),
    ]


@pytest.mark.parametrize("index", range(8))
def test_every_repeatable_member_rides_through_500s(
    stub: StubServer, clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
    fixture_bytes: Callable[[str], bytes], index: int,
) -> None:
    monkeypatch.setenv("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")
    name, call, ok, request = members(fixture_bytes)[index]
    stub.script = [FIVE_HUNDRED, FIVE_HUNDRED, FIVE_HUNDRED]
    stub.fallback = ok
    result = call(SyncPrefectClient(stub.api_url))
    assert result is None if name == "api_healthcheck" else result is not None
    assert [f"{m} {p.split('?')[0]}" for _, m, p in stub.seen] == [request] * 4
    assert clock.slept == [2.0, 4.0, 8.0]


def test_the_csrf_token_fetch_rides_through_500s_too(stub: StubServer, clock: FakeClock) -> None:
    token = json_reply(200, b'{"token": "tok", "expiration": "2999-01-01T00:00:00Z"}')
    stub.script = [FIVE_HUNDRED, FIVE_HUNDRED, token, (204, {}, b"")]
    SyncPrefectClient(stub.api_url).set_task_run_name(RUN_ID, "n")
    assert [m for _, m, _ in stub.seen] == ["GET", "GET", "GET", "PATCH"]


def test_a_lasting_500_fails_after_20_seconds_by_default_with_the_servers_detail(
    stub: StubServer, clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")
    monkeypatch.setenv("PREFECT_CLIENT_MAX_RETRIES", "10")  # the time limit ends it, not the count
    secret = "pnu_" + uuid.uuid4().hex
    stub.fallback = FIVE_HUNDRED
    client = SyncPrefectClient(stub.api_url.replace("://", "://user:pw@"), api_key=secret)
    with caplog.at_level(logging.DEBUG, logger="orchestration_client"), \
            pytest.raises(PrefectHTTPStatusError) as caught:
        client.read_task_run(RUN_ID)
    error = caught.value
    assert error.status_code == 500 and error.retries == 4
    assert error.detail == {"exception_message": "Internal Server Error"}
    assert str(error).startswith("Server error '500 Internal Server Error' for GET http://127.0.0.1")
    assert "(gave up after 4 retries) - Response: {\"exception_message\": \"Internal Server Error\"}" in str(error)
    assert clock.slept == [2.0, 4.0, 8.0, 6.0] and len(stub.seen) == 5
    lines = [r.getMessage() for r in caplog.records]
    assert sum(line.startswith("retry ") for line in lines) == 4
    assert any("not retrying GET /api/task_runs/" in line and "at most 20 s" in line for line in lines)
    assert secret not in caplog.text and "pw@" not in caplog.text and "pw@" not in str(error)


def test_no_retries_and_a_zero_limit_each_stop_500s_at_once(
    stub: StubServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")
    stub.fallback = FIVE_HUNDRED
    for name, value in (("PREFECT_CLIENT_MAX_RETRIES", "0"),
                        ("ORCHESTRATION_CLIENT_RETRY_500_SECONDS", "0")):
        with monkeypatch.context() as patch:
            patch.setenv(name, value)
            with pytest.raises(PrefectHTTPStatusError, match="500") as caught:
                SyncPrefectClient(stub.api_url).read_task_run(RUN_ID)
        assert caught.value.retries == 0
    assert len(stub.seen) == 2


def test_a_500_in_extra_codes_is_retried_by_count_as_prefect_does(
    stub: StubServer, clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")
    monkeypatch.setenv("PREFECT_CLIENT_RETRY_EXTRA_CODES", "500")
    stub.fallback = FIVE_HUNDRED
    with pytest.raises(PrefectHTTPStatusError, match="gave up after 5 retries"):
        SyncPrefectClient(stub.api_url).read_task_run(RUN_ID)
    assert clock.slept == [2.0, 4.0, 8.0, 16.0, 32.0]


def test_a_longer_limit_rides_through_longer_outages(
    stub: StubServer, clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The documented setting for a 2-minute outage: 180 s and 7 retries."""
    monkeypatch.setenv("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")
    monkeypatch.setenv("ORCHESTRATION_CLIENT_RETRY_500_SECONDS", "180")
    monkeypatch.setenv("PREFECT_CLIENT_MAX_RETRIES", "7")
    stub.fallback = FIVE_HUNDRED
    with pytest.raises(PrefectHTTPStatusError, match="gave up after 7 retries"):
        SyncPrefectClient(stub.api_url).read_task_run(RUN_ID)
    assert clock.slept == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 58.0]  # 180 s in all


# ---- the setting ------------------------------------------------------------------------------


def test_the_limit_defaults_to_20_seconds_and_is_read_from_the_environment() -> None:
    assert load_settings({}, cwd="/nonexistent").retry_500_seconds == 20.0
    settings = load_settings({"ORCHESTRATION_CLIENT_RETRY_500_SECONDS": " 7.5 "}, cwd="/nonexistent")
    assert settings.retry_500_seconds == 7.5
    assert settings.origins["retry_500_seconds"] == (
        "ORCHESTRATION_CLIENT_RETRY_500_SECONDS in the environment")
    assert load_settings({"ORCHESTRATION_CLIENT_RETRY_500_SECONDS": "0"}, cwd="/nonexistent").retry_500_seconds == 0
    assert load_settings({"ORCHESTRATION_CLIENT_RETRY_500_SECONDS": ""}, cwd="/nonexistent").retry_500_seconds == 20.0


@pytest.mark.parametrize("raw", ["-1", "soon", "nan", "inf", "3601", "1e9"])
def test_a_limit_that_cannot_be_meant_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(ValueError, match=r"ORCHESTRATION_CLIENT_RETRY_500_SECONDS must be a number"
                                         r".*\(from ORCHESTRATION_CLIENT_RETRY_500_SECONDS in the environment\)"):
        load_settings({"ORCHESTRATION_CLIENT_RETRY_500_SECONDS": raw}, cwd="/nonexistent")
