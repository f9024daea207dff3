"""The retry policy: Retry-After forms, Prefect's back-off, maintenance, read timeouts."""

import email.utils
import logging
import time
from typing import Any, Dict, List

import pytest
from urllib3.exceptions import MaxRetryError, NewConnectionError, ReadTimeoutError
from urllib3.response import HTTPResponse

from orchestration_client._retry import (
    MAX_MAINTENANCE_RETRIES,
    MAX_WAIT,
    PrefectRetry,
    parse_retry_after,
)


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
    for status in (400, 401, 403, 404, 409, 422, 500, 413):
        assert not policy.is_retry("POST", status, has_retry_after=True)
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
