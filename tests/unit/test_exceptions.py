"""The exception tree: Prefect's names, pickling, odd error bodies."""

import concurrent.futures
import multiprocessing
import pickle
import uuid
from typing import Iterator, List

import pytest
import requests
import responses
from support.stub_server import StubServer, json_reply

from orchestration_client import SyncPrefectClient, exceptions
from orchestration_client.exceptions import (
    ClientClosedError,
    ObjectAlreadyExists,
    ObjectNotFound,
    OrchestrationClientError,
    PrefectException,
    PrefectHTTPStatusError,
    RequestValidationError,
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


# ---- pickling (issue 10 item 12) -------------------------------------------------------------


def _read_missing_run(api_url: str) -> str:
    """Runs in a pool worker: the 404 must come back to the parent as ObjectNotFound."""
    SyncPrefectClient(api_url).read_task_run(RUN_ID)
    return "unreachable"


def _ok(value: int) -> int:
    return value * 2


def _errors_as_raised(mocked: responses.RequestsMock) -> List[BaseException]:
    """One instance of every error class, made the way the client makes it."""
    client = SyncPrefectClient(API)
    mocked.get(f"{API}/task_runs/{RUN_ID}", status=404, json={"detail": "Task run not found"})
    mocked.get(f"{API}/admin/version", status=500, json={"detail": "boom"})
    other = uuid.UUID(int=8)
    mocked.get(f"{API}/task_runs/{other}", body=b'"not a task run"')
    mocked.get(f"{API}/hello", body=requests.ConnectionError("refused"))
    mocked.get(f"{API}/task_run_states/", body=requests.exceptions.ReadTimeout("slow"))
    mocked.get(f"{API}/csrf-token", status=422, json={"detail": "CSRF protection is disabled."})
    mocked.post(f"{API}/task_runs/filter", status=422, json={"exception_detail": [
        {"loc": ["body", "sort"], "type": "enum", "input": "DURATION_ASC"}]})
    errors: List[BaseException] = []
    for call in (
        lambda: client.read_task_run(RUN_ID),
        client.api_version,
        lambda: client.read_task_run(other),
        client.hello,
        lambda: client.read_task_run_states(RUN_ID),
        lambda: client.read_task_runs(sort="DURATION_ASC"),
    ):
        with pytest.raises(Exception) as caught:
            call()
        errors.append(caught.value)
    response = requests.Response()
    response.status_code, response._content = 409, b'{"detail": "exists"}'
    errors.append(ObjectAlreadyExists(http_exc=requests.HTTPError("409", response=response)))
    errors.append(ObjectNotFound(http_exc=errors[0], help_message="see the report"))
    with client:
        pass
    with pytest.raises(ClientClosedError) as closed:
        client.hello()
    errors += [closed.value, RequestValidationError("invalid state: Expected `str`")]
    errors += [PrefectException("plain"), OrchestrationClientError("root")]
    errors.append(exceptions.ReplyTooLargeError(
        "GET /api/task_runs/filter: the reply is over 64 MiB", endpoint="GET /api/task_runs/filter",
        response=response, limit=64 << 20))
    errors.append(exceptions.StateChangeOutcomeUnknown(
        "the outcome of the state change is unknown", uuid.UUID(int=1), uuid.UUID(int=2)))
    return errors


def test_every_error_round_trips_through_pickle(mocked: responses.RequestsMock) -> None:
    errors = _errors_as_raised(mocked)
    kinds = {type(error) for error in errors}
    ours = {getattr(exceptions, name) for name in exceptions.__all__}
    assert ours <= kinds
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error) and copy.args == error.args
        for name in ("status_code", "method", "url", "detail", "retries", "endpoint"):
            assert getattr(copy, name, None) == getattr(error, name, None), name
        if isinstance(error, requests.RequestException) and error.response is not None:
            assert copy.response.status_code == error.response.status_code
            assert copy.response.content == error.response.content
        if isinstance(error, ObjectNotFound):
            assert copy.help_message == error.help_message
            assert str(copy.http_exc) == str(error.http_exc)


def test_a_pool_worker_raising_object_not_found_does_not_break_the_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")
    stub = StubServer(fallback=json_reply(404, b'{"detail": "Task run not found"}'))
    try:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
            failing = pool.submit(_read_missing_run, stub.api_url)
            with pytest.raises(ObjectNotFound) as caught:
                failing.result(timeout=120)
            assert caught.value.status_code == 404
            assert caught.value.detail == {"detail": "Task run not found"}
            assert "Task run not found" in str(caught.value)
            assert pool.submit(_ok, 21).result(timeout=60) == 42  # the pool still works
    finally:
        stub.stop()


# ---- hostile error bodies (issue 10 item 13) ---------------------------------------------------


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000])
def test_a_deeply_nested_error_body_is_a_status_error(
    mocked: responses.RequestsMock, body: bytes
) -> None:
    mocked.get(f"{API}/admin/version", status=500, body=body)
    with pytest.raises(PrefectHTTPStatusError) as caught:
        SyncPrefectClient(API).api_version()
    error = caught.value
    assert error.status_code == 500 and "500" in str(error)
    assert isinstance(error.detail, str) and error.detail.startswith(body[:10].decode())
    assert len(str(error)) < 2000
    assert "nested too deeply to parse" in str(error)
