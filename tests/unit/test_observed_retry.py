"""``observed()``: a retry policy that reports each retry it grants, so a caller can spend
one budget over several requests (set_task_run_state) or see that a request it waits for is
still being retried (the CSRF token's waiters)."""

from typing import List

import pytest
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, ProtocolError

from orchestration_client._http._observed_retry import observed
from orchestration_client._http._retry import PrefectRetry


def policy(max_retries: int = 2) -> PrefectRetry:
    return PrefectRetry.for_client(max_retries=max_retries, jitter_factor=0, first_contact=False)


def test_each_granted_retry_is_reported_with_the_policy_the_next_attempt_gets() -> None:
    seen: List[PrefectRetry] = []
    retry = observed(policy(), seen.append)
    first = retry.increment("GET", "/x", error=ProtocolError("reset"))
    second = first.increment("GET", "/x", error=ProtocolError("reset"))
    assert seen == [first, second]
    assert [r.total for r in seen] == [1, 0]
    with pytest.raises(MaxRetryError):  # a refused retry is not reported
        second.increment("GET", "/x", error=ProtocolError("reset"))
    assert len(seen) == 2


def test_the_copy_keeps_what_was_spent_and_leaves_the_original_alone() -> None:
    spent = policy(3).increment("GET", "/x", error=ProtocolError("reset"))
    retry = observed(spent, lambda new: None)
    assert retry.total == 2 and retry.history == spent.history
    assert retry.time_box == spent.time_box and retry.status_forcelist == spent.status_forcelist
    narrowed = retry.new(read=False, status_forcelist=frozenset())
    seen: List[PrefectRetry] = []
    refused = ConnectTimeoutError("refused")  # a narrowed policy retries connecting only
    reported = observed(narrowed, seen.append).increment("GET", "/x", error=refused)
    assert seen == [reported] and reported.total == 1
    assert spent.total == 2  # the policy it was made from is not changed
