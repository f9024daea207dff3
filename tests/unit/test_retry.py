"""The retry policy: Retry-After forms, Prefect's back-off, maintenance, read timeouts."""

import email.utils
import logging
import time
from typing import Any, Dict, List

import pytest
from urllib3.exceptions import MaxRetryError, NewConnectionError, ReadTimeoutError
from urllib3.response import HTTPResponse

from orchestration_client._http._retry import MAX_MAINTENANCE_RETRIES, PrefectRetry
from orchestration_client._retry_after import MAX_WAIT, parse_retry_after


def retry(**kwargs: Any) -> PrefectRetry:
    options: Dict[str, Any] = {"max_retries": 5, "jitter_factor": 0.2, "first_contact": False}
    options.update(kwargs)
    return PrefectRetry.for_client(**options)


def reply(status: int, **headers: str) -> HTTPResponse:
    return HTTPResponse(body=b"", status=status, headers=headers, preload_content=False)


@pytest.mark.parametrize("raw, expected", [
    ("3", 3.0), (" 2.5 ", 2.5), ("0", 0.0), ("-4", 0.0), ("1e1", 10.0),
    ("soon", None), ("", None), ("inf", None), ("nan", None),
])  # fmt: skip
def test_parse_retry_after_numbers(raw: str, expected: Any) -> None:
    assert parse_retry_after(raw) == expected


def test_parse_retry_after_dates() -> None:
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (parse_retry_after(future) or 0) <= 30
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert parse_retry_after(past) == 0.0
    naive = time.strftime("%a, %d %b %Y %H:%M:%S", time.gmtime(time.time() + 30))
    assert 28 <= (parse_retry_after(naive) or 0) <= 30  # no zone: read as UTC


def test_statuses_methods_and_budget() -> None:
    policy = retry()
    for status in (408, 429, 502, 503):
        assert policy.is_retry("POST", status)
    for status in (400, 401, 403, 404, 409, 422, 413, 501, 504):
        assert not policy.is_retry("POST", status, has_retry_after=True)
    assert policy.is_retry("POST", 500)  # within ORCHESTRATION_CLIENT_RETRY_500_SECONDS
    assert not retry(retry_500_seconds=0).is_retry("POST", 500, has_retry_after=True)
    assert retry(extra_codes={500}).is_retry("PATCH", 500)
    assert policy.total == 5 and policy.raise_on_status is False


def test_exponential_backoff_with_jitter() -> None:
    policy = retry()
    for attempt in range(1, 6):
        policy = policy.increment("GET", "/x", response=reply(503))
        waits = [policy.get_backoff_time() for _ in range(200)]
        base = 2.0**attempt
        assert min(waits) >= base * 0.8 and max(waits) <= base * 1.2
        assert abs(sum(waits) / len(waits) - base) < base * 0.05
    assert (
        retry(jitter_factor=0).increment("GET", "/x", response=reply(503)).get_backoff_time() == 2.0
    )


def test_budget_runs_out_after_max_retries() -> None:
    from urllib3.exceptions import MaxRetryError

    policy = retry(max_retries=2)
    policy = policy.increment("GET", "/x", response=reply(503))
    policy = policy.increment("GET", "/x", response=reply(503))
    with pytest.raises(MaxRetryError):
        policy.increment("GET", "/x", response=reply(503))


def test_first_contact_connect_errors_retry_quickly_then_fail() -> None:
    from urllib3.exceptions import MaxRetryError

    policy = retry(first_contact=True)
    error = NewConnectionError(None, "refused")  # type: ignore[arg-type]
    waits: List[float] = []
    for _ in range(3):
        policy = policy.increment("GET", "/x", error=error)
        waits.append(policy.get_backoff_time())
    assert waits == [0.0, 0.5, 1.0]
    with pytest.raises(MaxRetryError):
        policy.increment("GET", "/x", error=error)


def test_after_contact_connect_errors_get_the_full_budget() -> None:
    policy = retry(first_contact=False)
    error = NewConnectionError(None, "refused")  # type: ignore[arg-type]
    for attempt in range(1, 6):
        policy = policy.increment("GET", "/x", error=error)
        assert 2.0**attempt * 0.8 <= policy.get_backoff_time() <= 2.0**attempt * 1.2


def test_read_timeouts_are_not_retried() -> None:
    error = ReadTimeoutError(None, "/x", "read timed out")  # type: ignore[arg-type]
    with pytest.raises(ReadTimeoutError):
        retry().increment("GET", "/x", error=error)


def test_maintenance_replies_do_not_use_attempts() -> None:
    policy = retry(max_retries=1)
    for _ in range(MAX_MAINTENANCE_RETRIES):
        policy = policy.increment(
            "GET", "/x", response=reply(503, **{"Prefect-Maintenance": "true"})
        )
    assert policy.total == 1 and policy.attempts == 0
    policy = policy.increment("GET", "/x", response=reply(503, **{"Prefect-Maintenance": "true"}))
    assert policy.total == 0  # past the bound they count again


def test_sleep_honours_retry_after_and_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    slept: List[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    policy = retry().increment("POST", "/api/task_runs/", response=reply(429))
    with caplog.at_level(logging.DEBUG, logger="orchestration_client"):
        policy.sleep(reply(429, **{"Retry-After": "1.5"}))
        policy.sleep(reply(429, **{"Retry-After": "garbage"}))
    assert 1.5 <= slept[0] <= 1.8  # Retry-After is only ever lengthened by jitter
    assert 1.6 <= slept[1] <= 2.4  # junk falls back to the exponential wait
    assert "retry 1 of 5 for POST /api/task_runs/ after status 429" in caplog.text
    assert "Retry-After" in caplog.text and "'garbage'" in caplog.text


# ---- the cap on waits (issue 10 item 4) -------------------------------------------------------


@pytest.mark.parametrize("raw", ["1e10", "1000000000", "9" * 400, "1e400", "-1e400"])
def test_parse_retry_after_never_overflows(raw: str) -> None:
    value = parse_retry_after(raw)
    assert value is None or value >= 0


def test_parse_retry_after_far_future_dates() -> None:
    value = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT")
    assert value is not None and value > MAX_WAIT
    assert parse_retry_after("Fri, 31 Dec 99999 23:59:59 GMT") is None  # not a valid date


@pytest.mark.parametrize("header", ["61", "1000000000", "1e10", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_a_retry_after_over_the_cap_is_not_waited_for(header: str) -> None:
    policy = retry()
    with pytest.raises(MaxRetryError):
        policy.increment("GET", "/x", response=reply(503, **{"Retry-After": header}))
    with pytest.raises(MaxRetryError):  # maintenance replies too
        policy.increment(
            "GET", "/x", response=reply(503, **{"Retry-After": header, "Prefect-Maintenance": "true"})
        )


def test_no_single_wait_exceeds_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: List[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    policy = retry(max_retries=12, jitter_factor=0.5)
    for _ in range(12):
        policy = policy.increment("GET", "/x", response=reply(503))
        policy.sleep(reply(503))
    policy.sleep(reply(503, **{"Retry-After": str(MAX_WAIT)}))
    assert max(slept) <= MAX_WAIT and slept[-1] == MAX_WAIT
    assert MAX_WAIT == 60.0  # the README and the module docstring say so


# ---- 500s: retried for a bounded time (issue 19) ---------------------------------------------


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
    from orchestration_client._http import _retry

    fake = FakeClock()
    monkeypatch.setattr(_retry, "time", fake)
    return fake


def spend(policy: PrefectRetry, status: int, **headers: str) -> PrefectRetry:
    """One failed attempt: count it and wait as the policy says (urllib3's order)."""
    policy = policy.increment("GET", "/x", response=reply(status, **headers))
    policy.sleep(reply(status, **headers))
    return policy


def test_500s_are_retried_until_their_time_is_up(clock: FakeClock) -> None:
    policy = retry(max_retries=10, jitter_factor=0, retry_500_seconds=20)
    for _ in range(4):
        policy = spend(policy, 500)
    assert clock.slept == [2.0, 4.0, 8.0, 6.0]  # the last wait is cut to end at 20 s
    with pytest.raises(MaxRetryError):
        policy.increment("GET", "/x", response=reply(500))
    assert policy.attempts == 4


def test_the_default_limit_is_20_seconds(clock: FakeClock) -> None:
    policy = retry()  # max_retries 5, jitter 0.2
    spent = 0
    while True:
        try:
            policy = spend(policy, 500)
        except MaxRetryError:
            break
        spent += 1
    assert sum(clock.slept) == pytest.approx(20.0) and spent == 4


def test_each_500_retry_counts_against_max_retries(clock: FakeClock) -> None:
    policy = spend(spend(retry(max_retries=2, retry_500_seconds=600), 500), 500)
    with pytest.raises(MaxRetryError):
        policy.increment("GET", "/x", response=reply(500))
    with pytest.raises(MaxRetryError):  # no retries at all means no retries of 500s either
        retry(max_retries=0).increment("GET", "/x", response=reply(500))


def test_500_listed_in_extra_codes_is_retried_as_prefect_does(clock: FakeClock) -> None:
    """The user asked for Prefect's rule: by count, with no time limit."""
    policy = retry(max_retries=6, jitter_factor=0, extra_codes={500})
    for _ in range(6):
        policy = spend(policy, 500)
    assert clock.slept == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0]
    with pytest.raises(MaxRetryError):
        policy.increment("GET", "/x", response=reply(500))


def test_the_time_starts_at_the_first_500_and_other_statuses_keep_their_rules(
    clock: FakeClock,
) -> None:
    policy = retry(max_retries=8, jitter_factor=0, retry_500_seconds=10)
    for _ in range(3):
        policy = spend(policy, 503)  # 14 s of 503s: not time-boxed
    policy = spend(policy, 500)  # the 500s' 10 s start here: 16 s wait cut to 10
    policy = spend(policy, 503)  # 503s keep their full back-off, even past the 500s' limit
    assert clock.slept == [2.0, 4.0, 8.0, 10.0, 32.0]
    with pytest.raises(MaxRetryError):
        policy.increment("GET", "/x", response=reply(500))


def test_a_500_asking_to_wait_past_the_limit_is_not_retried(clock: FakeClock) -> None:
    policy = spend(retry(retry_500_seconds=20), 500)
    with pytest.raises(MaxRetryError):
        policy.increment("GET", "/x", response=reply(500, **{"Retry-After": "30"}))
    policy = spend(policy, 500, **{"Retry-After": "1"})  # within the limit: honoured
    assert 1.0 <= clock.slept[-1] <= 1.2


def test_no_500_is_retried_with_a_zero_limit_or_for_requests_never_repeated() -> None:
    assert not retry(retry_500_seconds=0).is_retry("GET", 500)
    never = retry().new(read=False, status_forcelist=frozenset())  # the transport's set_state policy
    assert not never.is_retry("POST", 500) and never.time_boxed == frozenset()


def test_waits_and_giving_up_on_500s_are_logged(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    policy = retry(jitter_factor=0, retry_500_seconds=5)
    with caplog.at_level(logging.DEBUG, logger="orchestration_client"):
        policy = spend(spend(policy, 500), 500)
        with pytest.raises(MaxRetryError):
            policy.increment("GET", "/x", response=reply(500))
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "retry 1 of 5 for GET /x after status 500; waiting 2.00 s (backoff)"
    assert lines[1] == (
        "retry 2 of 5 for GET /x after status 500; waiting 3.00 s (cut to the 5 s limit for 500s)"
    )
    assert lines[2] == (
        "not retrying GET /x: status 500 for 5.0 s; a 500 is retried for at most 5 s after "
        "the call's first one (ORCHESTRATION_CLIENT_RETRY_500_SECONDS)"
    )
