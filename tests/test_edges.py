"""Hostile or odd servers and settings at the transport's edge (issue 10 items 3, 4, 5, 14),
against scripted stub servers on 127.0.0.1."""

import email.utils
import threading
import time
import uuid
from typing import Callable, Iterator, List, Optional, Tuple

import pytest
from stub_server import HANG, StubServer, json_reply

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


def test_a_failed_token_fetch_fails_the_waiters_with_the_same_kind_of_error() -> None:
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
    import pathlib

    import orchestration_client._csrf as csrf

    tree = ast.parse(pathlib.Path(csrf.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "_transport" not in imported and "Transport" not in pathlib.Path(csrf.__file__).read_text()
