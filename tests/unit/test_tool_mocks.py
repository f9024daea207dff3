"""A user's test suite mocks the Prefect API with ``responses`` or ``requests-mock`` and drives
``get_client()`` through every member. The mocks must see exactly what a real server sees:
the same method, URL, headers and JSON body as the same workflow sent over a real socket."""

import re
from typing import Any, Dict, Iterator, List

import pytest
import requests
import requests_mock
import responses
from support.tools_workflow import Seen, SocketPrefect, normalise, route, workflow

from orchestration_client import get_client

MOCK_API = "http://prefect.mock/api"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_mocked_key")
    monkeypatch.setenv("PREFECT_CLIENT_CUSTOM_HEADERS", '{"X-Team": "data"}')
    return monkeypatch


@pytest.fixture
def over_the_socket(env: pytest.MonkeyPatch) -> Iterator[List[Seen]]:
    """What a server on a real socket receives for the workflow."""
    server = SocketPrefect()
    env.setenv("PREFECT_API_URL", server.api_url)
    try:
        with get_client() as client:
            workflow(client)
        yield server.seen
    finally:
        server.stop()


def expect_same(mocked: List[Seen], socket: List[Seen]) -> None:
    assert [(m, p) for m, p, _, _ in mocked] == [(m, p) for m, p, _, _ in socket]
    for got, want in zip(mocked, socket):
        assert got == want, f"{got[0]} {got[1]}: the mock saw something else than the socket"
    # What a user would assert on in their own tests:
    create = next(s for s in mocked if s[:2] == ("POST", "/api/task_runs/"))
    assert create[2]["authorization"] == "Bearer pnu_mocked_key"
    assert create[2]["x-team"] == "data"
    assert create[2]["prefect-csrf-token"] == "csrf-token-from-the-server"
    assert create[2]["content-type"] == "application/json"
    assert create[3]["task_key"] and create[3]["dynamic_key"] == "0"


def check_results(results: Dict[str, Any]) -> None:
    assert results["health"] is None
    assert results["hello"] == "👋" and results["version"] == "3.9.1"
    assert results["read"].id == results["run"].id
    assert results["runs"] and results["renamed"] == 204
    assert results["running"].status.value == "ACCEPT"
    assert [s.type.value for s in results["history"]]


def test_responses(env: pytest.MonkeyPatch, over_the_socket: List[Seen]) -> None:
    env.setenv("PREFECT_API_URL", MOCK_API)

    def answer(request: requests.PreparedRequest) -> Any:
        status, body = route(request.method or "", "/api" + (request.path_url.split("/api", 1)[1]
                                                            .split("?")[0]))
        return status, {"Content-Type": "application/json"}, body

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for method in ("GET", "POST", "PATCH"):
            mock.add_callback(method, re.compile(re.escape(MOCK_API) + ".*"), callback=answer)
        with get_client() as client:
            results = workflow(client)
        seen = [normalise(c.request.method or "", c.request.url or "", c.request.headers,
                          _bytes(c.request.body)) for c in mock.calls]
    check_results(results)
    expect_same(seen, over_the_socket)


def test_requests_mock(env: pytest.MonkeyPatch, over_the_socket: List[Seen]) -> None:
    env.setenv("PREFECT_API_URL", MOCK_API)

    def answer(request: Any, context: Any) -> bytes:
        status, body = route(request.method, request.path.replace("/api", "/api", 1)
                             if request.path.startswith("/api") else "/api" + request.path)
        context.status_code = status
        context.headers["Content-Type"] = "application/json"
        return body

    with requests_mock.Mocker() as mock:
        mock.register_uri(requests_mock.ANY, re.compile(re.escape(MOCK_API)), content=answer)
        with get_client() as client:
            results = workflow(client)
        seen = [normalise(r.method, r.url, r.headers, _bytes(r.body)) for r in mock.request_history]
    check_results(results)
    expect_same(seen, over_the_socket)


def test_mocked_errors_map_to_our_errors(env: pytest.MonkeyPatch) -> None:
    """A user's test that fakes a 404 or a dropped connection gets the same errors as
    against a real server."""
    from orchestration_client.exceptions import APIConnectionError, ObjectNotFound

    env.setenv("PREFECT_API_URL", MOCK_API)
    env.setenv("PREFECT_CLIENT_MAX_RETRIES", "0")
    run_id = "00000000-0000-0000-0000-00000000abcd"
    with requests_mock.Mocker() as mock, get_client() as client:
        mock.get(f"{MOCK_API}/task_runs/{run_id}", status_code=404, json={"detail": "Not found"})
        with pytest.raises(ObjectNotFound):
            client.read_task_run(run_id)
        mock.get(f"{MOCK_API}/task_runs/{run_id}", exc=requests.exceptions.ConnectionError)
        with pytest.raises(APIConnectionError):
            client.read_task_run(run_id)
    with responses.RequestsMock() as rsps, get_client() as client:
        rsps.add("GET", f"{MOCK_API}/task_runs/{run_id}", status=404, json={"detail": "Not found"})
        with pytest.raises(ObjectNotFound):
            client.read_task_run(run_id)


def _bytes(body: Any) -> Any:
    return body.encode() if isinstance(body, str) else body
