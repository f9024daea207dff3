"""The connection slots counted by holder, the wait before a retry made holding no connection,
urllib3's retry WARNING kept quiet for this client only, and the cookie jar's lock (issue 20's
adversarial review). The end-to-end proofs, interrupts included, are the scripts in
tests/regressions/ (interrupt_leaks_connection_slot.py and the three beside it)."""

import logging
import queue
import threading
import time
import types
from typing import Any, List

import pytest
from support.hostile_server import Exchange, HostileServer, reply
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
)
from urllib3.util.retry import RequestHistory, Retry

from orchestration_client import SyncPrefectClient
from orchestration_client._http import _retry
from orchestration_client._http._connection import ConnectionSlots, may_have_reached_server
from orchestration_client._http._retry import PrefectRetry


class Conn:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def in_thread(call: Any) -> Any:
    result: List[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    thread.join(10)
    return result[0]


def test_a_slot_is_the_callers_and_giving_it_back_twice_frees_one() -> None:
    slots = ConnectionSlots(2)
    assert slots.qsize() == 2
    assert slots.get(timeout=1) is None  # a slot, and no idle connection: urllib3 makes one
    assert in_thread(slots.qsize) == 1
    assert slots.get(timeout=1) is None  # the same caller again: still one slot
    assert in_thread(slots.qsize) == 1
    assert slots.qsize() == 0  # its holder can take nothing more: no idle connection
    conn = Conn()
    slots.put(conn)
    assert slots.qsize() == 2
    slots.put(None)  # urllib3's clean-up after an exception, once more: nothing to give
    slots.release()  # the transport's clean-up: nothing either
    assert slots.qsize() == 2
    assert in_thread(lambda: slots.get(timeout=1)) is conn  # the idle connection is reused
    assert slots.qsize() == 1  # held by that (finished) thread until it gives it back


def test_emptying_the_pool_item_by_item_ends() -> None:
    """vcrpy, leaving a cassette, takes ``pool.pool`` items while ``qsize()`` is non-zero and
    it has not found its own connections: that loop must end, as over urllib3's queue."""
    slots = ConnectionSlots(4)
    idle = [Conn(), Conn()]
    for conn in idle:
        slots.put(conn)
    taken = []
    for _ in range(100):
        if not slots.qsize():
            break
        taken.append(slots.get())
    else:
        pytest.fail("qsize() never reached 0 while its caller kept taking items")
    assert [conn for conn in taken if conn is not None] == idle[::-1]
    for conn in taken:
        slots.put(conn)  # vcrpy hands them back through _put_conn
    assert slots.qsize() == 4 and in_thread(slots.qsize) == 4
    assert in_thread(lambda: slots.get(timeout=1)) in idle


def test_a_caller_beyond_the_cap_waits_then_gets_empty() -> None:
    slots = ConnectionSlots(1)
    in_thread(lambda: slots.get(timeout=1))  # another caller holds the one slot
    started = time.monotonic()
    with pytest.raises(queue.Empty):
        slots.get(timeout=0.2)
    assert time.monotonic() - started >= 0.19
    assert slots.qsize() == 0
    slots.put(None)  # a caller that took nothing hands back nothing
    assert slots.qsize() == 0


def test_a_waiter_gets_the_slot_given_back() -> None:
    slots = ConnectionSlots(1)
    holder_may_go = threading.Event()

    def hold() -> None:
        slots.get(timeout=1)
        holder_may_go.wait(10)
        slots.put(Conn())

    holder = threading.Thread(target=hold)
    holder.start()
    while slots.qsize():
        time.sleep(0.01)
    threading.Timer(0.2, holder_may_go.set).start()
    assert isinstance(slots.get(timeout=5), Conn)
    holder.join(10)


def test_closing_takes_only_idle_connections() -> None:
    slots = ConnectionSlots(2)
    first, second = Conn(), Conn()
    both = threading.Barrier(2)

    def use(conn: Conn) -> None:
        slots.get(timeout=1)
        both.wait(5)  # both slots taken at once: two connections made
        slots.put(conn)

    users = [threading.Thread(target=use, args=(conn,)) for conn in (first, second)]
    for user in users:
        user.start()
    for user in users:
        user.join(10)
    assert slots.qsize() == 2
    taken = []
    with pytest.raises(queue.Empty):
        while True:
            taken.append(slots.get(block=False))  # urllib3's close(): never waits
    assert sorted(map(id, taken)) == sorted([id(first), id(second)])
    assert slots.qsize() == 2


# ---- the wait before a retry ------------------------------------------------------------------


def broken(policy: PrefectRetry, pool: Any) -> PrefectRetry:
    return policy.increment("GET", "/x", error=ProtocolError("Connection aborted."), _pool=pool)


def test_in_this_packages_pools_the_wait_is_left_for_the_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: List[float] = []
    monkeypatch.setattr(_retry, "time", types.SimpleNamespace(
        sleep=slept.append, monotonic=time.monotonic))  # fmt: skip
    policy = PrefectRetry.for_client(max_retries=5, jitter_factor=0, first_contact=False)
    ours = broken(policy, types.SimpleNamespace(defers_retry_waits=True))
    ours.sleep()  # urllib3 calls this while it still holds the broken connection
    assert slept == [] and ours.deferred_wait == 2.0
    ours.sleep_deferred()  # the pool's urlopen, at the start of the retry
    ours.sleep_deferred()
    assert slept == [2.0]
    elsewhere = broken(policy, None)  # a stock pool, or _calls' own retries
    elsewhere.sleep()
    assert slept == [2.0, 2.0]
    assert broken(ours, types.SimpleNamespace(defers_retry_waits=True)).deferred_wait == 0.0


# ---- urllib3's retry WARNING ---------------------------------------------------------------------


def retrying_record(policy: Retry) -> logging.LogRecord:
    return logging.LogRecord(
        "urllib3.connectionpool", logging.WARNING, __file__, 1,
        "Retrying (%r) after connection broken by '%r': %s", (policy, OSError("refused"), "/x"),
        None,
    )  # fmt: skip


def test_only_this_clients_retry_warnings_are_dropped() -> None:
    SyncPrefectClient("http://127.0.0.1:9/api")
    SyncPrefectClient("http://127.0.0.1:9/api")
    pool_logger = logging.getLogger("urllib3.connectionpool")
    ours = [f for f in pool_logger.filters if type(f).__name__ == "_OwnRetryWarnings"]
    assert len(ours) == 1  # added once, however many clients
    policy = PrefectRetry.for_client(max_retries=5, jitter_factor=0, first_contact=False)
    assert not pool_logger.filter(retrying_record(policy))
    assert pool_logger.filter(retrying_record(Retry(3)))  # someone else's pool
    full = logging.LogRecord("urllib3.connectionpool", logging.WARNING, __file__, 1,
                             "Connection pool is full, discarding connection: %s", ("h",), None)
    assert pool_logger.filter(full)


# ---- which earlier attempt may have reached the server -------------------------------------


@pytest.mark.parametrize("attempt, reached", [
    (RequestHistory("POST", "/x", None, 500, None), True),  # answered
    (RequestHistory("POST", "/x", ProtocolError("Connection aborted."), None, None), True),
    (RequestHistory("POST", "/x", NewConnectionError(None, "refused"), None, None), False),
    (RequestHistory("POST", "/x", ConnectTimeoutError("connect timed out"), None, None), False),
    (RequestHistory("POST", "/x", ProxyError("no proxy", NewConnectionError(None, "x")), None,
                    None), False),
])  # fmt: skip
def test_only_a_failure_to_connect_surely_did_not_reach_the_server(
    attempt: RequestHistory, reached: bool
) -> None:
    assert may_have_reached_server(attempt) is reached


# ---- the cookie jar's lock ------------------------------------------------------------------------


@pytest.fixture
def server() -> Any:
    started = HostileServer(fallback=reply(200))
    yield started
    started.stop()


def test_a_reply_that_sets_no_cookie_does_not_take_the_jars_lock(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """http.cookiejar takes the lock before the try that releases it: an interrupt just
    between left it held, and every other thread's next call hung."""
    monkeypatch.setenv("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")
    client = SyncPrefectClient(server.api_url)
    lock = client._transport.session.cookies._cookies_lock
    held, done = threading.Event(), threading.Event()

    def hold() -> None:  # as an interrupted thread would
        with lock:
            held.set()
            done.wait(20)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    answered: List[str] = []
    caller = threading.Thread(target=lambda: answered.append(client.api_version()))
    caller.start()
    caller.join(5)
    while_held = list(answered)
    done.set()
    holder.join(10)
    caller.join(10)
    assert while_held == ["3.9.1"]


def test_cookies_a_proxy_sets_are_still_kept_and_sent(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")
    sticky = reply(200, **{"Set-Cookie": "AWSALB=node-2; Path=/"})
    server.script = [sticky]
    client = SyncPrefectClient(server.api_url)
    client.api_version()
    client.api_version()
    second: Exchange = server.seen[-1]
    assert second.headers.get("cookie") == "AWSALB=node-2"
