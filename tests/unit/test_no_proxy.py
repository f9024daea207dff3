"""NO_PROXY as both Prefect's client (httpx) and requests read it: the API goes direct when
either would send it direct. Through a real local proxy that records what it relays, a
``host:port`` entry for an IP-address API host keeps every call, and so the Authorization
header, off the proxy; a table of entry forms is checked against httpx and requests
themselves. The same against a real Prefect server: tests/worlds/test_worlds.py."""

import os
from typing import Iterator, Optional

import pytest
import requests.utils
from support.hostile_server import HostileServer, echo_task_run
from support.recording_proxy import RecordingProxy

from orchestration_client import get_client
from orchestration_client._http._no_proxy import environment_proxies

PROXY = "http://127.0.0.1:3128"
KEY = "pnu_worlds_secret_key"

#: (API URL, NO_PROXY, direct?) for every form the docs name; no request is sent anywhere.
FORMS = [
    ("http://127.0.0.1:4200/api", "127.0.0.1:4200", True),  # httpx: host:port
    ("http://127.0.0.1:4200/api", " other.example , 127.0.0.1:4200 ", True),
    ("http://127.0.0.1:4200/api", "127.0.0.1:4201", False),
    ("http://127.0.0.1:4200/api", "127.0.0.1", True),
    ("http://127.0.0.1:4200/api", "127.0.0.0/8", True),  # requests: CIDR
    ("http://127.0.0.1:4200/api", "10.0.0.0/8", False),
    ("http://10.1.2.3:4200/api", "10.0.0.0/8", True),
    ("http://10.1.2.3:4200/api", "10.1.2.3/32", True),
    ("http://127.0.0.1:4200/api", "*", True),
    ("http://127.0.0.1:4200/api", "example.com,*", True),
    ("http://127.0.0.1:4200/api", "http://127.0.0.1:4200", True),  # httpx: scheme://host:port
    ("http://127.0.0.1:4200/api", "http://127.0.0.1", True),
    ("http://127.0.0.1:4200/api", "https://127.0.0.1:4200", False),
    ("http://localhost:4200/api", "localhost", True),
    ("http://localhost:4200/api", "LOCALHOST", True),
    ("http://localhost:4200/api", "localhost:4200", True),
    ("http://localhost:4200/api", "localhost:9999", False),
    ("http://[::1]:4200/api", "::1", True),
    ("http://[::1]:4200/api", "::2", False),
    ("http://prefect.example.com/api", "example.com", True),
    ("http://prefect.example.com/api", ".example.com", True),
    ("http://example.com/api", ".example.com", True),  # requests: the domain itself too
    ("http://PREFECT.Example.com/api", "example.COM", True),
    ("http://example.org/api", "example.com", False),
    ("https://prefect.example.com:8443/api", "prefect.example.com:8443", True),
    ("https://prefect.example.com:8443/api", "prefect.example.com:443", False),
    ("https://prefect.example.com/api", "prefect.example.com", True),
    ("https://prefect.example.com/api", "https://prefect.example.com", True),
    ("https://prefect.example.com/api", "http://prefect.example.com", False),
    ("http://127.0.0.1:4200/api", "", False),
    ("http://127.0.0.1:4200/api", ",,", False),
]


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HTTP_PROXY", PROXY)
    monkeypatch.setenv("HTTPS_PROXY", PROXY)
    yield monkeypatch


@pytest.mark.parametrize("url, no_proxy, direct", FORMS)
def test_no_proxy_forms(
    proxy_env: pytest.MonkeyPatch, url: str, no_proxy: str, direct: bool
) -> None:
    proxy_env.setenv("NO_PROXY", no_proxy)
    proxies = environment_proxies(url)
    assert (proxies == {}) is direct
    if not direct:
        assert proxies["http"] == proxies["https"] == PROXY


def httpx_goes_direct(url: str) -> Optional[bool]:
    """What httpx (Prefect's client) does for ``url`` with this environment; None when it
    refuses the NO_PROXY value."""
    httpx = pytest.importorskip("httpx")  # in the test extra (with prefect), not the matrix
    try:
        client = httpx.Client(trust_env=True)
    except Exception:
        return None
    with client:
        return client._transport_for_url(httpx.URL(url)) is client._transport


@pytest.mark.parametrize("url, no_proxy, direct", FORMS)
def test_direct_exactly_when_httpx_or_requests_goes_direct(
    proxy_env: pytest.MonkeyPatch, url: str, no_proxy: str, direct: bool
) -> None:
    proxy_env.setenv("NO_PROXY", no_proxy)
    by_httpx = httpx_goes_direct(url)
    by_requests = requests.utils.should_bypass_proxies(url, no_proxy=None)
    assert by_httpx is not None
    assert direct == (by_httpx or by_requests)
    assert (environment_proxies(url) == {}) == direct


def test_lower_case_names_are_read_and_win(proxy_env: pytest.MonkeyPatch) -> None:
    proxy_env.setenv("no_proxy", "127.0.0.1:4200")
    proxy_env.setenv("NO_PROXY", "elsewhere.example")
    assert environment_proxies("http://127.0.0.1:4200/api") == {}


# ---- through a real proxy ------------------------------------------------------------------


@pytest.fixture
def recorder() -> Iterator[RecordingProxy]:
    started = RecordingProxy()
    yield started
    started.stop()


@pytest.fixture
def api() -> Iterator[HostileServer]:
    started = HostileServer(fallback=echo_task_run())
    yield started
    started.stop()


def read_through_env(api: HostileServer, env: pytest.MonkeyPatch) -> None:
    env.setenv("PREFECT_API_URL", api.api_url)
    env.setenv("PREFECT_API_KEY", KEY)
    env.setenv("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")
    with get_client() as client:
        for run_id in (
            "6a9a43b4-9c4b-4a0e-9d4e-2b0d4f1e6a01",
            "6a9a43b4-9c4b-4a0e-9d4e-2b0d4f1e6a02",
        ):
            assert str(client.read_task_run(run_id).id) == run_id


@pytest.mark.parametrize("form", ["127.0.0.1:{port}", "http://127.0.0.1:{port}", "127.0.0.0/8",
                                  "127.0.0.1", "*"])  # fmt: skip
def test_an_api_host_named_in_no_proxy_goes_direct_and_its_key_never_reaches_the_proxy(
    proxy_env: pytest.MonkeyPatch, recorder: RecordingProxy, api: HostileServer, form: str
) -> None:
    proxy_env.setenv("HTTP_PROXY", recorder.url)
    proxy_env.setenv("NO_PROXY", f"elsewhere.example,{form.format(port=api.port)}")
    read_through_env(api, proxy_env)
    assert recorder.seen == []
    assert len(api.seen) == 2
    assert all(exchange.headers["authorization"] == f"Bearer {KEY}" for exchange in api.seen)


@pytest.mark.parametrize("form", ["127.0.0.1:{other}", "10.0.0.0/8", "example.com", ""])
def test_an_api_host_not_named_goes_through_the_proxy(
    proxy_env: pytest.MonkeyPatch, recorder: RecordingProxy, api: HostileServer, form: str
) -> None:
    """The control: the proxy is real and relays the calls when NO_PROXY does not match."""
    proxy_env.setenv("http_proxy", recorder.url)
    proxy_env.setenv("no_proxy", form.format(other=api.port + 1))
    read_through_env(api, proxy_env)
    assert [seen.url.split("/api", 1)[0] for seen in recorder.seen] == [api.origin] * 2
    assert len(api.seen) == 2
