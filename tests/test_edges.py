"""Hostile or odd servers and settings at the transport's edge (issue 10 items 3, 4, 5, 14),
against scripted stub servers on 127.0.0.1."""

import email.utils
import threading
import time
import uuid
from typing import Callable, Iterator, List, Optional

import pytest
from stub_server import StubServer, json_reply

from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import PrefectHTTPStatusError

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
