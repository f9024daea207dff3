"""The CSRF token's single flight: what the callers waiting for another caller's token fetch
get when that fetch ends badly.

* A failure of the fetch itself (the server could not be reached, did not answer in time,
  answered an error status or a bad token) is every waiter's answer: one fetch, one error
  each.
* Anything else that ends the leader (KeyboardInterrupt, SystemExit, gevent.Timeout,
  GreenletExit, Celery's SoftTimeLimitExceeded, a bug in a patched-in tool) belongs to the
  leader: it is raised there only, and a waiter takes the fetch over within its own budget.
* A fetch that is being retried tells its waiters so at each retry: they wait along; one
  that goes quiet for longer than an attempt (plus a back-off wait after a retry) is given
  up with APITimeoutError.
* Every error for want of a token is marked, and says the request was not sent.

The fetch is a plain callable here; the same rules against a real server with CSRF on, with
real Ctrl-C and gevent.Timeout, are in tests/worlds/test_worlds.py.
"""

import threading
import time
from typing import Any, Callable, Dict, List, Optional, Type, Union

import pytest
import requests

from orchestration_client._http import _csrf as csrf_module
from orchestration_client._http._csrf import CsrfToken, Fetch, _Flight, token_failure
from orchestration_client._http._transport import Transport
from orchestration_client.exceptions import (
    APIConnectionError,
    APITimeoutError,
    PrefectHTTPStatusError,
    ResponseDecodeError,
)

WAITERS = 3


def token_reply(token: str, status: int = 200) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.url = "http://prefect.test/api/csrf-token"
    response.request = requests.Request("GET", response.url).prepare()
    if status == 200:
        response._content = f'{{"token": "{token}", "expiration": "2999-01-01T00:00:00Z"}}'.encode()
    else:
        response._content = b'{"detail": "Unauthorized"}'
    return response


class Leader:
    """A fetch function whose first call (the leader's) waits until the waiters are waiting,
    then ends with ``first``; later calls answer token ``t<n>``."""

    def __init__(self, first: Callable[[], requests.Response]) -> None:
        self.first = first
        self.calls = 0
        self.in_fetch = threading.Event()
        self.waiters_started = threading.Semaphore(0)
        self.lock = threading.Lock()

    def __call__(self, client_id: str, progress: Callable[[], None]) -> requests.Response:
        with self.lock:
            self.calls += 1
            number = self.calls
        if number > 1:
            return token_reply(f"t{number}")
        self.in_fetch.set()
        for _ in range(WAITERS):
            assert self.waiters_started.acquire(timeout=10)
        time.sleep(0.3)  # the waiters are now inside headers(), waiting for this fetch
        return self.first()


def run(token: CsrfToken, leader: Leader) -> Dict[str, List[Any]]:
    """The leader thread and WAITERS threads call headers(); what each one got."""
    outcome: Dict[str, List[Any]] = {"leader": [], "waiters": []}

    def call(role: str) -> None:
        try:
            outcome[role].append(token.headers()["Prefect-Csrf-Token"])
        except BaseException as exc:  # the point of the test: whatever reaches each caller
            outcome[role].append(exc)

    first = threading.Thread(target=call, args=("leader",))
    first.start()
    assert leader.in_fetch.wait(10)
    threads = [threading.Thread(target=call, args=("waiters",)) for _ in range(WAITERS)]
    for thread in threads:
        thread.start()
        leader.waiters_started.release()
    for thread in [first, *threads]:
        thread.join(30)
        assert not thread.is_alive()
    return outcome


def token_of(call: Callable[[], Dict[str, str]]) -> str:
    """The token a call in the test's own thread got; whatever else it raised (even a
    KeyboardInterrupt copied from another thread) fails the test instead of stopping pytest."""
    try:
        return call()["Prefect-Csrf-Token"]
    except BaseException as exc:
        raise AssertionError(f"the call raised {exc!r}") from None


def new_token(fetch: Fetch, limit: float = 10) -> CsrfToken:
    return CsrfToken(True, fetch=fetch, check=Transport.raise_for_status, timeout=(limit, 0))


def raises(exc: BaseException) -> Callable[[], requests.Response]:
    def fail() -> requests.Response:
        raise exc

    return fail


class ToolBug(RuntimeError):
    """Not a fetch failure: say, a patched-in tool that broke in the leader's thread."""


class OwnBaseException(BaseException):
    pass


@pytest.mark.parametrize(
    "own",
    [
        KeyboardInterrupt,
        SystemExit,
        "gevent:Timeout",
        "greenlet:GreenletExit",
        # an Exception, not a BaseException, and still the leader's own
        "celery.exceptions:SoftTimeLimitExceeded",
        ToolBug,
        OwnBaseException,
    ],
    ids=lambda own: own if isinstance(own, str) else own.__name__,
)
def test_what_ends_the_leader_stays_with_the_leader_and_a_waiter_takes_over(
    own: Union[str, Type[BaseException]],
) -> None:
    if isinstance(own, str):  # the test extra has these tools; the interpreter matrix does not
        module, name = own.split(":")
        own = getattr(pytest.importorskip(module), name)
        assert isinstance(own, type)
    leader = Leader(raises(own()))
    token = new_token(leader)
    outcome = run(token, leader)
    assert len(outcome["leader"]) == 1
    assert type(outcome["leader"][0]) is own
    # Every waiter got a token, from one fetch made by the waiter that took over.
    assert outcome["waiters"] == ["t2"] * WAITERS
    assert leader.calls == 2
    assert token.headers()["Prefect-Csrf-Token"] == "t2"  # and it is kept for later calls


@pytest.mark.parametrize(
    "failure, expected",
    [
        (raises(APIConnectionError("Could not reach the Prefect API")), APIConnectionError),
        (raises(APITimeoutError("no reply within 10 s")), APITimeoutError),
        (lambda: token_reply("", status=401), PrefectHTTPStatusError),
        (lambda: token_reply("bad token \u00e9"), ResponseDecodeError),
    ],
    ids=["connection", "timeout", "401", "bad-token"],
)
def test_a_failed_fetch_answers_every_waiter_once(
    failure: Callable[[], requests.Response], expected: Type[Exception]
) -> None:
    leader = Leader(failure)
    outcome = run(new_token(leader), leader)
    everyone = outcome["leader"] + outcome["waiters"]
    assert [type(error) for error in everyone] == [expected] * (WAITERS + 1)
    assert len({id(error) for error in everyone}) == WAITERS + 1  # each raises its own object
    assert leader.calls == 1  # nobody fetched again: the failure applies to all


def leader_in_flight(token: Any) -> threading.Thread:
    """A thread that asks ``token`` for headers, returned once its fetch is under way."""
    leader = threading.Thread(target=token.headers)
    leader.start()
    while token._flight is None:
        time.sleep(0.01)
    return leader


def test_a_waiter_waits_for_other_fetches_no_longer_than_its_own_budget() -> None:
    release = threading.Event()

    def hang(client_id: str, progress: Callable[[], None]) -> requests.Response:
        release.wait(30)
        return token_reply("late")

    token = new_token(hang, limit=0.5)
    leader = leader_in_flight(token)
    started = time.monotonic()
    with pytest.raises(APITimeoutError, match=r"not been answered within 0\.5 s") as caught:
        token.headers()
    assert time.monotonic() - started < 5
    assert "no CSRF token could be had, so the request was not sent" in str(caught.value)
    assert token_failure(caught.value)
    release.set()
    leader.join(10)


def test_after_an_abandoned_flight_the_takeover_gets_only_what_is_left_of_the_budget() -> None:
    """The leader is stopped after 0.6 s; the waiter's budget is 1 s in all, so it takes
    over and then follows nobody else for longer than the 0.4 s left."""
    calls: List[float] = []

    def fetch(client_id: str, progress: Callable[[], None]) -> requests.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            time.sleep(0.6)
            raise KeyboardInterrupt
        return token_reply("t2")

    token = new_token(fetch, limit=1.0)
    errors: List[BaseException] = []

    def lead() -> None:
        try:
            token.headers()
        except BaseException as exc:
            errors.append(exc)

    leader = threading.Thread(target=lead)
    leader.start()
    while token._flight is None:
        time.sleep(0.01)
    assert token_of(token.headers) == "t2"
    leader.join(10)
    assert [type(error) for error in errors] == [KeyboardInterrupt]
    assert len(calls) == 2


def test_a_flight_left_unfinished_does_not_block_later_callers() -> None:
    """If the leader is stopped so abruptly that its flight is never released (a second
    interrupt while the interpreter unwinds the first), the waiter that times out on it
    clears it, so the next caller fetches instead of waiting again."""
    token = new_token(lambda client_id, progress: token_reply("fresh"), limit=0.3)
    flight = _Flight(0.3)
    flight.running.acquire()  # held for ever, with no outcome: the leader is gone
    token._flight = flight
    with pytest.raises(APITimeoutError):
        token.headers()
    started = time.monotonic()
    assert token.headers()["Prefect-Csrf-Token"] == "fresh"
    assert time.monotonic() - started < 0.3


def test_a_refused_token_is_renewed_by_a_waiter_after_the_renewing_leader_is_interrupted() -> None:
    calls: List[Optional[str]] = []
    first_renewal = threading.Event()

    def fetch(client_id: str, progress: Callable[[], None]) -> requests.Response:
        calls.append(client_id)
        if len(calls) == 2:  # the first renewal: its caller is interrupted
            first_renewal.set()
            time.sleep(0.5)
            raise KeyboardInterrupt
        return token_reply(f"t{len(calls)}")

    token = new_token(fetch)
    assert token.headers()["Prefect-Csrf-Token"] == "t1"
    interrupted: List[BaseException] = []

    def renew() -> None:
        try:
            token.headers(refused="t1")
        except BaseException as exc:
            interrupted.append(exc)

    thread = threading.Thread(target=renew)
    thread.start()
    assert first_renewal.wait(10)
    assert token_of(lambda: token.headers(refused="t1")) == "t3"
    thread.join(10)
    assert [type(error) for error in interrupted] == [KeyboardInterrupt]


def test_a_waiter_goes_on_waiting_while_the_fetch_is_retried() -> None:
    """A fetch that is answered and retried (500s while the database restarts) keeps its
    waiters waiting past one attempt's time: each retry is a sign of life."""

    def fetch(client_id: str, progress: Callable[[], None]) -> requests.Response:
        for _ in range(6):
            time.sleep(0.2)  # an attempt answered 500, then the back-off wait
            progress()
        return token_reply("after-the-blip")

    token = new_token(fetch, limit=0.5)
    leader = leader_in_flight(token)
    started = time.monotonic()
    assert token_of(token.headers) == "after-the-blip"
    assert time.monotonic() - started > 0.5  # longer than one attempt: it waited along
    leader.join(10)


def test_after_the_last_sign_of_life_a_waiter_waits_one_wait_and_one_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(csrf_module, "MAX_WAIT", 0.5)  # the longest back-off wait
    release = threading.Event()

    def fetch(client_id: str, progress: Callable[[], None]) -> requests.Response:
        time.sleep(0.2)
        progress()  # retried once, then the next attempt hangs
        release.wait(30)
        return token_reply("late")

    token = new_token(fetch, limit=0.5)
    leader = leader_in_flight(token)
    started = time.monotonic()
    with pytest.raises(APITimeoutError, match=r"within 1 s \(.* and a back-off wait\)"):
        token.headers()
    assert 0.5 < time.monotonic() - started < 5
    release.set()
    leader.join(10)


@pytest.mark.parametrize("role", ["leader", "waiters"])
def test_an_error_for_want_of_a_token_says_the_request_was_not_sent(role: str) -> None:
    """Marked so (set_task_run_state must not take it for a failure of its proposal); a
    timeout or a connection failure names the request, a token reply's error keeps naming
    GET /csrf-token."""
    for failure, kind in [
        (raises(APITimeoutError("GET /csrf-token: no reply within 10 s")), APITimeoutError),
        (lambda: token_reply("", status=500), PrefectHTTPStatusError),
    ]:
        leader = Leader(failure)
        token = new_token(leader)
        outcome: Dict[str, List[Any]] = {"leader": [], "waiters": []}

        def call(who: str, token: CsrfToken = token, outcome: Dict[str, List[Any]] = outcome) -> None:
            try:
                token.headers(request="POST /task_runs/1/set_state")
            except BaseException as exc:
                outcome[who].append(exc)

        threads = [threading.Thread(target=call, args=("leader",))]
        threads[0].start()
        assert leader.in_fetch.wait(10)
        for _ in range(WAITERS):
            threads.append(threading.Thread(target=call, args=("waiters",)))
            threads[-1].start()
            leader.waiters_started.release()
        for thread in threads:
            thread.join(10)
        for error in outcome[role]:
            assert type(error) is kind and token_failure(error)
            if kind is APITimeoutError:
                assert str(error).startswith(
                    "no CSRF token could be had, so POST /task_runs/1/set_state was not sent: "
                    "GET /csrf-token: no reply within 10 s"
                )
            else:
                assert "/csrf-token" in error.url
        assert len(outcome[role]) == (1 if role == "leader" else WAITERS)
