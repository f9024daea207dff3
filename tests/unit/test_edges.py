"""Hostile or odd servers and settings at the transport's edge (issue 10 items 3, 4, 5, 14),
against scripted stub servers on 127.0.0.1."""

import base64
import email.utils
import json
import logging
import pathlib
import re
import threading
import time
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
from support.raw_capture import ATTRIBUTION_ENV, ATTRIBUTION_HEADERS, RawCapture
from support.stub_server import HANG, StubServer, json_reply

from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import APITimeoutError, PrefectHTTPStatusError

RUN_ID = uuid.UUID(int=11)
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


def bounded(call: Callable[[], object], seconds: float) -> Optional[BaseException]:
    """Run ``call`` in a daemon thread; fail if it has not ended within ``seconds`` (so that
    a test of a call that would hang for years ends anyway). Returns what it raised."""
    raised: List[Optional[BaseException]] = [None]

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the test
            raised[0] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the call was still running after {seconds} s"
    return raised[0]


# ---- Retry-After beyond the cap (item 4) ------------------------------------------------------


@pytest.mark.parametrize("status", [503, 429])
@pytest.mark.parametrize("header, shown", [
    ("1000000000", "1000000000 s"),
    ("1e10", "10000000000 s"),
    ("Fri, 31 Dec 9999 23:59:59 GMT", "'Fri, 31 Dec 9999 23:59:59 GMT'"),
    ("61", "61 s"),
])  # fmt: skip
def test_a_retry_after_over_the_cap_fails_the_call_at_once(
    stub: StubServer, client: SyncPrefectClient, status: int, header: str, shown: str
) -> None:
    stub.script = [json_reply(status, b'{"detail": "slow down"}', Retry_After=header)]
    started = time.monotonic()
    error = bounded(client.api_version, 10)
    assert time.monotonic() - started < 5
    assert isinstance(error, PrefectHTTPStatusError), repr(error)
    assert error.status_code == status and len(stub.seen) == 1
    assert error.retry_after is not None and error.retry_after > 60
    message = str(error)
    assert str(status) in message and shown in message and "at most 60 s" in message
    assert "slow down" in message


def test_a_retry_after_within_the_cap_is_still_honoured(
    stub: StubServer, client: SyncPrefectClient
) -> None:
    target = time.time() + 1.5
    stub.script = [json_reply(503, Retry_After=email.utils.formatdate(target, usegmt=True))]
    assert client.api_version() == "3.9.1" and len(stub.seen) == 2


# ---- CSRF token fetched outside the lock (item 5) ---------------------------------------------

TOKEN = json_reply(200, b'{"token": "tok", "expiration": "2999-01-01T00:00:00Z"}')


class CsrfStub(StubServer):
    """A stub whose /csrf-token replies are scripted apart from the other routes."""

    def __init__(self, token_reply: object) -> None:
        super().__init__(fallback=json_reply(200, b"true"))
        self.token_reply = token_reply
        self.token_requests = 0

    def next_reply(self, method: str, path: str):  # type: ignore[no-untyped-def]
        if path.startswith("/api/csrf-token"):
            with self._lock:
                self.token_requests += 1
                self.seen.append((time.monotonic(), method, path))
            if self.token_reply == "slow":
                time.sleep(1)
                return TOKEN
            if self.token_reply == "slow-500":
                time.sleep(1)
                return json_reply(500, b'{"detail": "token store down"}')
            return self.token_reply
        return super().next_reply(method, path)


def _in_threads(call: Callable[[], object], count: int) -> List[Tuple[float, Optional[BaseException]]]:
    """Run ``call`` in ``count`` threads started together; each thread's time and error."""
    results: List[Tuple[float, Optional[BaseException]]] = []
    barrier = threading.Barrier(count)
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        started = time.monotonic()
        error: Optional[BaseException] = None
        try:
            call()
        except Exception as exc:
            error = exc
        with lock:
            results.append((time.monotonic() - started, error))

    threads = [threading.Thread(target=run, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == count, "some calls never ended"
    return results


def test_a_hanging_token_endpoint_bounds_every_caller_by_its_own_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREFECT_API_REQUEST_TIMEOUT", "1")
    stub = CsrfStub(HANG)
    try:
        client = SyncPrefectClient(stub.api_url)
        results = _in_threads(lambda: client.set_task_run_name(RUN_ID, "n"), 8)
    finally:
        stub.stop()
    durations = sorted(duration for duration, _ in results)
    # Each call's budget is one connect + read timeout (2 s); before, they queued: 1, 2, ... 8 s.
    assert durations[-1] < 2 + 1, durations
    assert all(isinstance(error, APITimeoutError) for _, error in results), results
    assert stub.token_requests == 1  # one fetch served (and failed) every waiting thread


def test_one_token_fetch_serves_every_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    stub = CsrfStub("slow")
    try:
        client = SyncPrefectClient(stub.api_url)
        results = _in_threads(lambda: client.set_task_run_name(RUN_ID, "n"), 8)
    finally:
        stub.stop()
    assert [error for _, error in results] == [None] * 8
    assert stub.token_requests == 1
    assert len([path for _, method, path in stub.seen if method == "PATCH"]) == 8


def test_a_failed_token_fetch_fails_the_waiters_with_the_same_kind_of_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCHESTRATION_CLIENT_RETRY_500_SECONDS", "0")  # one fetch, not retried
    stub = CsrfStub("slow-500")
    try:
        client = SyncPrefectClient(stub.api_url)
        results = _in_threads(lambda: client.set_task_run_name(RUN_ID, "n"), 4)
        errors = [error for _, error in results]
        assert stub.token_requests == 1
        # The failure is not kept: the next call fetches a token again.
        stub.token_reply = TOKEN
        client.set_task_run_name(RUN_ID, "n")
        assert stub.token_requests == 2
    finally:
        stub.stop()
    for error in errors:
        assert isinstance(error, PrefectHTTPStatusError) and error.status_code == 500
        assert "token store down" in str(error)
    assert len({id(error) for error in errors}) == 4  # each thread raised its own object


def test_the_csrf_module_does_not_import_the_transport() -> None:
    import ast

    import orchestration_client._http._csrf as csrf

    tree = ast.parse(pathlib.Path(csrf.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "_transport" not in imported and "Transport" not in pathlib.Path(csrf.__file__).read_text()


# ---- non-Latin-1 header values (item 3) ---------------------------------------------------------

@pytest.fixture
def capture() -> Iterator[RawCapture]:
    server = RawCapture()
    yield server
    server.stop()


def test_non_latin1_attribution_and_custom_headers_are_sent_as_utf8(
    capture: RawCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, text in ATTRIBUTION_ENV.items():
        monkeypatch.setenv(variable, text)
    monkeypatch.setenv("PREFECT_CLIENT_CUSTOM_HEADERS", json.dumps({"X-Team": "チーム 🚀"}))
    client = SyncPrefectClient(capture.api_url, httpx_settings={"headers": {"X-Site": "Zürich"}})
    assert client.api_version() == "3.9.1"
    sent = capture.header_lines((*ATTRIBUTION_HEADERS, b"x-team", b"x-site"))
    assert sorted(sent) == sorted([
        "X-Prefect-Flow-Name: データ処理".encode(),
        f"X-Prefect-Flow-Id: {uuid.UUID(int=5)}".encode(),
        "X-Prefect-Worker-Name: wörker".encode(),
        "X-Prefect-Deployment-Name: déploiement 🚀".encode(),
        "X-Team: チーム 🚀".encode(),
        "X-Site: Zürich".encode(),
    ])  # fmt: skip


# ---- secrets never in messages, header values checked at build time (item 14) -----------------

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize("arguments, env, names", [
    ({"api": f"admin:{SECRET}@127.0.0.1:4200/api"}, {}, "http:// or https://"),
    ({"api": f"http://admin:pa/{SECRET}@127.0.0.1:4200/api"}, {}, "percent-encode"),
    ({"api": f"http://admin:pa#{SECRET}@127.0.0.1:4200/api"}, {}, "percent-encode"),
    ({"api": f"http://admin:pa?{SECRET}@127.0.0.1:4200/api"}, {}, "percent-encode"),
    ({"api": f"http://admin:{SECRET}%0A@127.0.0.1:4200/api"}, {}, "user:password in the API URL"),
    ({"api_key": f"{SECRET}\n"}, {}, "api_key (PREFECT_API_KEY)"),
    ({"api_key": f"pa\n{SECRET}"}, {}, "api_key (PREFECT_API_KEY)"),
    ({"auth_string": f"admin:{SECRET}\r\n"}, {}, "auth_string (PREFECT_API_AUTH_STRING)"),
    ({"httpx_settings": {"headers": {"X-Token": f"{SECRET}\n"}}}, {}, "httpx_settings['headers']['X-Token']"),
    ({}, {"PREFECT_CLIENT_CUSTOM_HEADERS": json.dumps({"X-Token": f"{SECRET}\r\nX-Evil: 1"})},
     "PREFECT_CLIENT_CUSTOM_HEADERS['X-Token']"),
    ({}, {"PREFECT__DEPLOYMENT_NAME": f"a\n{SECRET}"}, "PREFECT__DEPLOYMENT_NAME"),
    ({"api_version": f"0.8.4\n{SECRET}"}, {}, "api_version"),
])  # fmt: skip
def test_a_bad_secret_or_header_is_refused_at_build_time_without_showing_it(
    arguments: Dict[str, Any], env: Dict[str, str], names: str,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    for variable, text in env.items():
        monkeypatch.setenv(variable, text)
    arguments = {"api": "http://127.0.0.1:4200/api", **arguments}
    with caplog.at_level(logging.DEBUG), pytest.raises(ValueError) as caught:
        SyncPrefectClient(**arguments)
    error: Optional[BaseException] = caught.value
    assert names in str(caught.value)
    shown = []
    while error is not None:
        shown += [str(error), repr(error), *map(str, error.args)]
        error = error.__cause__ or error.__context__
    shown += [record.getMessage() for record in caplog.records]
    for text in shown:
        assert SECRET not in text and SECRET[:4] not in text, text


def test_a_valid_password_with_encoded_characters_is_used_and_never_shown() -> None:
    client = SyncPrefectClient(f"http://admin:pa%2F%23{SECRET}@127.0.0.1:4200/api")
    assert client.api_url == "http://127.0.0.1:4200/api/" and SECRET not in repr(client)
    expected = base64.b64encode(f"admin:pa/#{SECRET}".encode()).decode()
    assert client._transport.session.headers["Authorization"] == f"Basic {expected}"


def test_blanks_around_a_key_are_dropped() -> None:
    client = SyncPrefectClient("http://127.0.0.1:4200/api", api_key=f" {SECRET}\t")
    assert client._transport.session.headers["Authorization"] == f"Bearer {SECRET}"


def test_httpx_headers_as_pairs_still_work(capture: RawCapture) -> None:
    client = SyncPrefectClient(capture.api_url, httpx_settings={"headers": [("X-Site", "Zürich")]})
    assert client.api_version() == "3.9.1"
    assert capture.header_lines((b"x-site",)) == ["X-Site: Zürich".encode()]


@pytest.mark.parametrize("headers, message", [
    ({"X Bad": "v"}, "invalid header name 'X Bad'"),
    ({"X-Num": 3}, "httpx_settings['headers']['X-Num'] must be a string, got int"),
])  # fmt: skip
def test_bad_header_names_and_types_are_refused(headers: Dict[str, Any], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=re.escape(message)):
        SyncPrefectClient("http://127.0.0.1:4200/api", httpx_settings={"headers": headers})
