"""The exception tree: Prefect's names, pickling, odd error bodies."""

import uuid
from typing import Iterator

import pytest
import requests
import responses

from orchestration_client import SyncPrefectClient, exceptions
from orchestration_client.exceptions import (
    ObjectAlreadyExists,
    ObjectNotFound,
    OrchestrationClientError,
    PrefectException,
    PrefectHTTPStatusError,
)

API = "http://prefect.test/api"
RUN_ID = uuid.UUID(int=7)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


# ---- Prefect's names -------------------------------------------------------------------------


def test_every_error_is_a_prefect_exception() -> None:
    for name in exceptions.__all__:
        cls = getattr(exceptions, name)
        assert issubclass(cls, PrefectException), name
    assert PrefectException.__name__ == "PrefectException"
    assert issubclass(OrchestrationClientError, PrefectException)


def test_except_prefect_exception_catches_a_404(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API}/task_runs/{RUN_ID}", status=404, json={"detail": "Task run not found"})
    with pytest.raises(PrefectException) as caught:
        SyncPrefectClient(API).read_task_run(RUN_ID)
    error = caught.value
    assert isinstance(error, ObjectNotFound) and isinstance(error, requests.HTTPError)
    assert error.status_code == 404 and error.method == "GET"
    assert error.url == f"{API}/task_runs/{RUN_ID}" and error.retries == 0
    assert error.detail == {"detail": "Task run not found"}
    assert error.http_exc is error and error.http_exc.response.status_code == 404
    assert error.help_message is None


def test_object_not_found_is_constructible_as_in_prefect(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API}/task_runs/{RUN_ID}", status=404, json={"detail": "Task run not found"})
    with pytest.raises(PrefectHTTPStatusError) as caught:
        SyncPrefectClient(API).read_task_run(RUN_ID)
    http_error = caught.value
    wrapped = ObjectNotFound(http_exc=http_error, help_message="no such run in the report")
    assert str(wrapped) == "no such run in the report"
    assert wrapped.http_exc is http_error and wrapped.help_message == "no such run in the report"
    assert wrapped.status_code == 404 and wrapped.method == "GET"
    assert wrapped.detail == {"detail": "Task run not found"}
    assert wrapped.response is http_error.response
    assert isinstance(wrapped, PrefectException) and isinstance(wrapped, PrefectHTTPStatusError)

    # Positional, without a help message, from a plain requests error or any exception.
    response = requests.Response()
    response.status_code, response._content = 404, b'{"detail": "gone"}'
    plain = ObjectNotFound(requests.HTTPError("404 gone", response=response))
    assert plain.status_code == 404 and plain.detail == {"detail": "gone"}
    assert "404" in str(plain) and plain.help_message is None
    bare = ObjectNotFound(http_exc=KeyError("x"))
    assert bare.status_code == 404 and bare.response is None and "KeyError" in str(bare)


def test_object_already_exists_is_constructible_as_in_prefect() -> None:
    response = requests.Response()
    response.status_code, response._content = 409, b'{"detail": "exists"}'
    http_error = requests.HTTPError("409", response=response)
    error = ObjectAlreadyExists(http_exc=http_error)
    assert isinstance(error, PrefectException) and isinstance(error, PrefectHTTPStatusError)
    assert error.http_exc is http_error and error.status_code == 409
    assert error.detail == {"detail": "exists"} and "409" in str(error)
    assert str(ObjectAlreadyExists(http_error, "a queue of that name exists")) == (
        "a queue of that name exists"
    )
