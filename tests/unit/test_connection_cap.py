"""Connections in flight are capped (ORCHESTRATION_CLIENT_MAX_CONNECTIONS, 16 by default, as
Prefect's client): callers beyond the cap wait for a free connection, at most the connect
timeout, and then fail with APITimeoutError without sending anything. Every connection
opened is kept for reuse, so urllib3 never logs "Connection pool is full, discarding
connection". The same under gevent and in prefork servers: tests/worlds/test_worlds.py."""

import logging
import signal
import threading
import time
import uuid
from typing import Iterator, List

import pytest
from support.hostile_server import Exchange, HostileServer, reply, task_run_json

from orchestration_client import SyncPrefectClient
from orchestration_client._http._connection import DEFAULT_MAX_CONNECTIONS, MAX_CONNECTIONS_VARIABLE
from orchestration_client.exceptions import APITimeoutError
from orchestration_client.states import Running

SLOW = "5" * 8  # ids starting with this are answered after HOLD seconds
HOLD = 2.0


class Echo:
    """Answers ``GET .../task_runs/<id>`` with that run after a short delay (HOLD seconds for
    SLOW ids) and counts the requests in progress at once."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __call__(self, exchange: Exchange) -> bool:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            run_id = exchange.path.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
            exchange.stop.wait(HOLD if run_id.startswith(SLOW) else self.delay)
            return reply(200, task_run_json(run_id))(exchange)
        finally:
            with self.lock:
                self.now -= 1


@pytest.fixture
def echo() -> Echo:
    return Echo(delay=0.05)


@pytest.fixture
def server(echo: Echo) -> Iterator[HostileServer]:
    started = HostileServer(fallback=echo)
    yield started
    started.stop()


@pytest.fixture(autouse=True)
def no_csrf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")


def slow_id() -> str:
    return SLOW + str(uuid.uuid4())[8:]


def read_all(client: SyncPrefectClient, threads: int, each: int) -> List[str]:
    """``threads`` threads doing ``each`` reads at once; the problems seen."""
    problems: List[str] = []
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait()
        for _ in range(each):
            run_id = str(uuid.uuid4())
            try:
                got = str(client.read_task_run(run_id).id)
            except Exception as exc:
                problems.append(f"{type(exc).__name__}: {exc}")
                continue
            if got != run_id:
                problems.append(f"asked for {run_id}, got {got}")

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(120)
    return problems


def test_many_callers_share_at_most_16_connections_and_nothing_is_discarded(
    server: HostileServer, echo: Echo, caplog: pytest.LogCaptureFixture
) -> None:
    assert DEFAULT_MAX_CONNECTIONS == 16
    client = SyncPrefectClient(server.api_url)
    with caplog.at_level(logging.DEBUG, logger="urllib3"):
        assert read_all(client, threads=48, each=3) == []
    assert echo.peak <= 16
    assert server.connections <= 16  # each one opened was kept and reused
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_the_cap_is_a_setting(
    server: HostileServer, echo: Echo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MAX_CONNECTIONS_VARIABLE, "3")
    client = SyncPrefectClient(server.api_url)
    assert read_all(client, threads=12, each=2) == []
    assert echo.peak <= 3
    assert server.connections <= 3


@pytest.mark.parametrize("value", ["0", "-1", "many", "2.5", "1e3"])
def test_a_bad_cap_is_refused_naming_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MAX_CONNECTIONS_VARIABLE, value)
    with pytest.raises(ValueError, match=MAX_CONNECTIONS_VARIABLE):
        SyncPrefectClient("http://127.0.0.1:9/api")


def hold_the_only_connection(client: SyncPrefectClient) -> threading.Thread:
    holder = threading.Thread(target=client.read_task_run, args=(slow_id(),))
    holder.start()
    time.sleep(0.3)  # the slow read now has the one connection
    return holder


def test_the_wait_for_a_free_connection_ends_at_the_connect_timeout(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MAX_CONNECTIONS_VARIABLE, "1")
    client = SyncPrefectClient(server.api_url, httpx_settings={"timeout": (0.5, 10)})
    holder = hold_the_only_connection(client)
    sent_before = len(server.seen)
    started = time.monotonic()
    with pytest.raises(APITimeoutError) as caught:
        client.read_task_run(uuid.uuid4())
    waited = time.monotonic() - started
    assert 0.4 < waited < HOLD - 0.3  # the connect timeout, not the holder's whole call
    message = str(caught.value)
    assert "no free connection within 0.5 s" in message
    assert MAX_CONNECTIONS_VARIABLE in message and "not sent" in message
    assert len(server.seen) == sent_before
    holder.join(10)
    assert client.read_task_run(run_id := uuid.uuid4()).id == run_id  # the slot came back


def test_a_state_change_that_found_no_free_connection_was_not_sent(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not ``StateChangeOutcomeUnknown``: the proposal never left the client."""
    monkeypatch.setenv(MAX_CONNECTIONS_VARIABLE, "1")
    client = SyncPrefectClient(server.api_url, httpx_settings={"timeout": (0.5, 10)})
    holder = hold_the_only_connection(client)
    with pytest.raises(APITimeoutError) as caught:
        client.set_task_run_state(uuid.uuid4(), Running())
    assert type(caught.value) is APITimeoutError
    assert not any("set_state" in exchange.path for exchange in server.seen)
    holder.join(10)


class Interrupted(BaseException):
    """What a Ctrl-C or a gevent.Timeout is to the code it interrupts."""


def test_callers_interrupted_while_waiting_for_a_connection_free_no_extra_one(
    server: HostileServer, echo: Echo, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """An interrupted wait must not hand back a connection it never took: urllib3 puts one
    back all the same, which would raise the cap (a later caller goes straight in while both
    connections are still busy) and later make urllib3 2 raise FullPoolError (or urllib3
    1.26 log 'pool is full') into a caller whose call succeeded."""
    monkeypatch.setenv(MAX_CONNECTIONS_VARIABLE, "2")
    client = SyncPrefectClient(server.api_url, httpx_settings={"timeout": (30, 30)})

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted()

    previous = signal.signal(signal.SIGALRM, interrupt)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    caplog.set_level(logging.DEBUG, logger="orchestration_client")
    try:
        for _ in range(3):
            holders = [threading.Thread(target=client.read_task_run, args=(slow_id(),))
                       for _ in range(2)]  # fmt: skip
            for holder in holders:
                holder.start()
            time.sleep(0.3)
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            with pytest.raises(Interrupted):
                client.read_task_run(uuid.uuid4())  # waits for a connection, interrupted
            # Both connections are still busy: this caller must wait for one too.
            later = threading.Thread(target=client.read_task_run, args=(uuid.uuid4(),))
            later.start()
            for thread in [*holders, later]:
                thread.join(10)
            assert echo.peak <= 2
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert read_all(client, threads=8, each=3) == []
    assert echo.peak <= 2
    (pool,) = client._transport._adapter.poolmanager.pools._container.values()  # the one used
    assert pool.pool.qsize() == 2  # every slot back, none lost or added
    assert [r.getMessage() for r in caplog.records if "full" in r.getMessage()] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
