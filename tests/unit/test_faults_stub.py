"""Fault injection with a scripted HTTP server on 127.0.0.1: Retry-After in every form,
retries running out, a server that never answers, malformed replies, broken connections.
Waits are kept to a few seconds so the whole module stays bounded."""

import email.utils
import logging
import time
import uuid
from typing import Callable, Iterator

import pytest
from support.stub_server import HANG, RESET, StubServer, json_reply

from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import (
    APIConnectionError,
    APITimeoutError,
    PrefectHTTPStatusError,
    ResponseDecodeError,
)
from orchestration_client.schemas import Task
from orchestration_client.states import Running

RUN_ID = uuid.UUID(int=9)
OK = json_reply(200, b'"3.9.1"')


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer(fallback=OK)
    yield server
    server.stop()


@pytest.fixture
def client(stub: StubServer, monkeypatch: pytest.MonkeyPatch) -> SyncPrefectClient:
    monkeypatch.setenv("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")
    return SyncPrefectClient(stub.api_url)


@pytest.mark.parametrize("status", [429, 503, 502, 408])
@pytest.mark.parametrize("header, low, high", [
    ("1", 1.0, 1.2),          # whole seconds
    ("0.4", 0.4, 0.48),       # fractional seconds (Prefect 3.9 accepts these)
])  # fmt: skip
def test_retry_after_seconds_is_honoured(stub: StubServer, client: SyncPrefectClient,
                                         status: int, header: str, low: float, high: float) -> None:
    stub.script = [json_reply(status, Retry_After=header)]
    assert client.api_version() == "3.9.1"
    assert len(stub.seen) == 2
    assert low - 0.02 <= stub.gaps()[0] <= high + 0.25


def test_retry_after_http_date_is_honoured(stub: StubServer, client: SyncPrefectClient) -> None:
    target = time.time() + 2
    stub.script = [json_reply(503, Retry_After=email.utils.formatdate(target, usegmt=True))]
    assert client.api_version() == "3.9.1"
    # HTTP dates have one-second resolution: the wait ends within a second of the date.
    assert 0.9 <= stub.gaps()[0] <= 2.0 * 1.2 + 0.25


def test_malformed_retry_after_falls_back_to_backoff(stub: StubServer, client: SyncPrefectClient,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    stub.script = [json_reply(429, Retry_After="in a moment")]
    with caplog.at_level(logging.DEBUG, logger="orchestration_client"):
        assert client.api_version() == "3.9.1"
    assert 1.6 - 0.02 <= stub.gaps()[0] <= 2.4 + 0.25  # first exponential wait: 2 s +/- 20 %
    assert "'in a moment'" in caplog.text and "backoff" in caplog.text


def test_retries_run_out_and_the_error_says_so(stub: StubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_CLIENT_MAX_RETRIES", "2")
    monkeypatch.setenv("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")
    stub.fallback = json_reply(503, b'{"exception_message":"Service Unavailable"}', Retry_After="0.1")
    client = SyncPrefectClient(stub.api_url)
    with pytest.raises(PrefectHTTPStatusError) as caught:
        client.read_task_run(RUN_ID)
    assert len(stub.seen) == 3  # the first try and two retries
    error = caught.value
    assert error.status_code == 503 and error.retries == 2
    assert "gave up after 2 retries" in str(error) and "Service Unavailable" in str(error)


def test_extra_codes_and_post_are_retried(stub: StubServer, monkeypatch: pytest.MonkeyPatch,
                                          fixture_bytes: Callable[[str], bytes]) -> None:
    monkeypatch.setenv("PREFECT_CLIENT_RETRY_EXTRA_CODES", "500")
    monkeypatch.setenv("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")
    stub.script = [json_reply(500, Retry_After="0.1"), json_reply(201, fixture_bytes("task_run_created"))]
    run = SyncPrefectClient(stub.api_url).create_task_run(Task(name="t"), None, "0")
    assert [method for _, method, _ in stub.seen] == ["POST", "POST"]
    assert run.name


@pytest.mark.parametrize("status", [501, 504, 500])
def test_no_retry_for_other_errors(stub: StubServer, monkeypatch: pytest.MonkeyPatch,
                                   status: int) -> None:
    monkeypatch.setenv("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")
    monkeypatch.setenv("ORCHESTRATION_CLIENT_RETRY_500_SECONDS", "0")  # 500: never retried
    client = SyncPrefectClient(stub.api_url)
    stub.script = [json_reply(status, b'{"exception_message":"Internal Server Error"}')]
    with pytest.raises(PrefectHTTPStatusError, match=str(status)) as caught:
        client.api_version()
    assert len(stub.seen) == 1 and caught.value.retries == 0


def test_server_that_never_answers_times_out(stub: StubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_REQUEST_TIMEOUT", "1")
    stub.fallback = HANG
    client = SyncPrefectClient(stub.api_url)
    started = time.monotonic()
    with pytest.raises(APITimeoutError, match=r"no reply within 1.0 s") as caught:
        client.read_task_run(RUN_ID)
    assert time.monotonic() - started < 1 + 1
    assert str(RUN_ID) in str(caught.value) and len(stub.seen) == 1  # not retried


def test_timeout_from_httpx_settings_wins(stub: StubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_REQUEST_TIMEOUT", "30")
    stub.fallback = HANG
    client = SyncPrefectClient(stub.api_url, httpx_settings={"timeout": 0.5})
    started = time.monotonic()
    with pytest.raises(APITimeoutError):
        client.hello()
    assert time.monotonic() - started < 0.5 + 1


def test_reset_connections_are_retried_once_the_server_answered(stub: StubServer,
                                                                client: SyncPrefectClient) -> None:
    assert client.api_version() == "3.9.1"  # first contact
    stub.script = [RESET, RESET]
    assert client.api_version() == "3.9.1"
    assert len(stub.seen) == 4


def test_wrong_url_fails_fast() -> None:
    from support.prefect_server import free_port

    client = SyncPrefectClient(f"http://127.0.0.1:{free_port()}/api")
    started = time.monotonic()
    with pytest.raises(APIConnectionError, match=r"Could not reach the Prefect API for GET http://127\.0\.0\.1:\d+/api/hello"):
        client.hello()
    assert time.monotonic() - started < 3  # three quick retries (0, 0.5, 1 s), then the error


@pytest.mark.parametrize("reply, fragment", [
    (json_reply(200, b"<html><body><h1>502 Bad Gateway</h1></body></html>", Content_Type="text/html"), "b'<html>"),
    (json_reply(200, b'{"state": {"type": "RUNNING"'), "truncated"),
    (json_reply(200, b'{"state": null, "status": "MAYBE", "details": {"type": "accept_details"}}'), "$.status"),
    (json_reply(200, b'{"state": null, "status": "ACCEPT", "details": {"type": "mystery"}}'), "$.details"),
    (json_reply(200, b""), "an empty body"),
])  # fmt: skip
def test_malformed_replies_are_clear_errors(stub: StubServer, client: SyncPrefectClient,
                                            reply: object, fragment: str) -> None:
    stub.script = [reply]  # type: ignore[list-item]
    with pytest.raises(ResponseDecodeError) as caught:
        client.set_task_run_state(RUN_ID, Running())
    assert str(caught.value).startswith(f"POST /api/task_runs/{RUN_ID}/set_state answered 200")
    assert "OrchestrationResult" in str(caught.value) and fragment in str(caught.value)
    # Nothing is left half-done: the same client goes on working.
    assert client.api_version() == "3.9.1"


def test_error_page_from_a_proxy_is_a_status_error(stub: StubServer, client: SyncPrefectClient) -> None:
    stub.script = [json_reply(404, b"<html>nginx: not found</html>", Content_Type="text/html")]
    with pytest.raises(PrefectHTTPStatusError) as caught:
        client.read_task_run(RUN_ID)
    assert caught.value.status_code == 404 and "nginx: not found" in str(caught.value)
