"""Session set-up: httpx_settings, headers, TLS, CSRF, redirects and secrets."""

import json
import logging
import time
import uuid
from typing import Iterator

import pytest
import requests
import responses

from orchestration_client import SyncPrefectClient, get_client
from orchestration_client._exceptions import redact_url
from orchestration_client.exceptions import PrefectHTTPStatusError
from orchestration_client.schemas import Task
from orchestration_client.states import Running

API = "http://prefect.test/api"
RUN_ID = uuid.UUID(int=3)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def transport(client: SyncPrefectClient):  # type: ignore[no-untyped-def]
    return client._transport


# ---- httpx_settings --------------------------------------------------------------------------


def test_httpx_settings_map_onto_the_session(mocked: responses.RequestsMock) -> None:
    mocked.get("http://other.test/api/hello", json="👋")
    client = SyncPrefectClient(API, httpx_settings={
        "headers": {"X-Team": "data", "User-Agent": "ignored"},
        "timeout": 3, "verify": False, "cert": ("c.pem", "k.pem"), "params": {"a": "1"},
        "cookies": {"sid": "x"}, "follow_redirects": False, "proxy": "http://proxy:3128",
        "base_url": "http://other.test/api",
    })  # fmt: skip
    t = transport(client)
    assert client.api_url == "http://other.test/api/"  # base_url wins, as in Prefect
    assert t.timeout == (3.0, 3.0) and t.follow_redirects is False
    assert t.session.verify is False and t.session.cert == ("c.pem", "k.pem")
    assert t.session.proxies == {"http": "http://proxy:3128", "https": "http://proxy:3128"}
    t.session.proxies = {}
    client.hello()
    request = mocked.calls[0].request
    assert request.headers["X-Team"] == "data"
    assert request.headers["User-Agent"].startswith("orchestration_client/")
    assert request.headers["Cookie"] == "sid=x" and request.url.endswith("/hello?a=1")


def test_timeout_forms() -> None:
    class HttpxTimeout:
        connect, read = 1.0, 9.0

    assert transport(SyncPrefectClient(API, httpx_settings={"timeout": (2, 5)})).timeout == (2, 5)
    assert transport(
        SyncPrefectClient(API, httpx_settings={"timeout": HttpxTimeout()})
    ).timeout == (1.0, 9.0)
    assert transport(SyncPrefectClient(API, httpx_settings={"timeout": None})).timeout is None
    with pytest.raises(TypeError, match="timeout"):
        SyncPrefectClient(API, httpx_settings={"timeout": "fast"})


def test_default_timeout_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert transport(SyncPrefectClient(API)).timeout == (60.0, 60.0)
    monkeypatch.setenv("PREFECT_API_REQUEST_TIMEOUT", "4")
    assert transport(SyncPrefectClient(API)).timeout == (4.0, 4.0)


def test_proxies_mapping_form() -> None:
    t = transport(SyncPrefectClient(API, httpx_settings={"proxies": {"all://": "http://p:1"}}))
    assert t.session.proxies == {"http": "http://p:1", "https": "http://p:1"}


@pytest.mark.parametrize("key", ["transport", "limits", "http2", "event_hooks", "auth"])
def test_unsupported_keys_are_a_type_error_naming_them(key: str) -> None:
    with pytest.raises(TypeError, match=repr(key)):
        SyncPrefectClient(API, httpx_settings={key: object()})


def test_an_app_beside_a_url_is_refused_as_in_prefect() -> None:
    with pytest.raises(ValueError, match="'app' in httpx_settings"):
        SyncPrefectClient(API, httpx_settings={"app": object()})


def test_ssl_context_and_bad_urls_are_refused() -> None:
    import ssl

    with pytest.raises(TypeError, match="SSLContext"):
        SyncPrefectClient(API, httpx_settings={"verify": ssl.create_default_context()})
    with pytest.raises(ValueError, match="must start with http"):
        SyncPrefectClient("127.0.0.1:4200/api")
    with pytest.raises(TypeError, match="httpx_settings must be a mapping"):
        SyncPrefectClient(API, httpx_settings=[("timeout", 1)])  # type: ignore[arg-type]


# ---- TLS -----------------------------------------------------------------------------------------


def test_tls_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    assert transport(SyncPrefectClient(API)).session.verify is True
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/requests.pem")
    assert transport(SyncPrefectClient(API)).session.verify == "/requests.pem"
    monkeypatch.setenv("SSL_CERT_FILE", "/fallback.pem")
    assert transport(SyncPrefectClient(API)).session.verify == "/fallback.pem"
    monkeypatch.setenv("PREFECT_API_SSL_CERT_FILE", "/ca.pem")
    assert transport(SyncPrefectClient(API)).session.verify == "/ca.pem"
    monkeypatch.setenv("PREFECT_API_TLS_INSECURE_SKIP_VERIFY", "true")
    assert transport(SyncPrefectClient(API)).session.verify is False
    assert (
        transport(SyncPrefectClient(API, httpx_settings={"verify": "/mine.pem"})).session.verify
        == "/mine.pem"
    )


# ---- headers --------------------------------------------------------------------------------


def test_custom_headers_cannot_override_protected_ones(
    mocked: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("PREFECT_CLIENT_CUSTOM_HEADERS", json.dumps({
        "X-Custom": "1", "authorization": "Bearer stolen", "User-Agent": "x",
        "Prefect-Csrf-Token": "t", "X-PREFECT-API-VERSION": "0.8.3",
    }))  # fmt: skip
    mocked.get(f"{API}/hello", json="👋")
    with caplog.at_level(logging.WARNING, logger="orchestration_client"):
        SyncPrefectClient(API, api_key="real").hello()
    headers = mocked.calls[0].request.headers
    assert headers["X-Custom"] == "1" and headers["Authorization"] == "Bearer real"
    assert headers["User-Agent"].startswith("orchestration_client/")
    assert "Prefect-Csrf-Token" not in headers and headers["X-PREFECT-API-VERSION"] == "0.8.3"
    assert "may not set authorization" in caplog.text and "stolen" not in caplog.text


def test_attribution_headers(
    mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "ignored")
    monkeypatch.setenv("PREFECT__WORKER_NAME", "w1")
    monkeypatch.setenv("PREFECT__DEPLOYMENT_NAME", "nightly")
    mocked.get(f"{API}/hello", json="👋")
    SyncPrefectClient(API).hello()
    headers = mocked.calls[0].request.headers
    assert headers["X-Prefect-Worker-Name"] == "w1"
    assert headers["X-Prefect-Deployment-Name"] == "nightly"


def test_get_client_reads_url_and_credentials(
    mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", API)
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_1")
    mocked.get(f"{API}/hello", json="👋")
    with get_client() as client:
        client.hello()
    assert mocked.calls[-1].request.headers["Authorization"] == "Bearer pnu_1"
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "admin:pw")
    with get_client() as client:
        client.hello()
    assert mocked.calls[-1].request.headers["Authorization"].startswith("Basic ")


def test_get_client_without_url_and_ephemeral_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_ENABLED", "false")
    with pytest.raises(ValueError, match=r"Set PREFECT_API_URL.*orchestration_client\[server\]"):
        get_client()


# ---- CSRF -----------------------------------------------------------------------------------


def test_csrf_token_is_fetched_once_and_sent_on_mutations_only(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(
        f"{API}/csrf-token",
        json={"token": "tok", "client": "c", "expiration": "2999-01-01T00:00:00Z"},
    )
    mocked.patch(f"{API}/task_runs/{RUN_ID}", status=204)
    mocked.get(f"{API}/hello", json="👋")
    client = SyncPrefectClient(API)
    client.set_task_run_name(RUN_ID, "a")
    client.set_task_run_name(RUN_ID, "b")
    client.hello()
    methods = [c.request.method for c in mocked.calls]
    assert methods == ["GET", "PATCH", "PATCH", "GET"]
    csrf_id = mocked.calls[0].request.params["client"]
    for call in mocked.calls[1:3]:
        assert call.request.headers["Prefect-Csrf-Token"] == "tok"
        assert call.request.headers["Prefect-Csrf-Client"] == csrf_id
    assert "Prefect-Csrf-Token" not in mocked.calls[3].request.headers


def test_expired_or_refused_token_is_refreshed(mocked: responses.RequestsMock) -> None:
    tokens = iter(["old", "new"])
    mocked.add_callback(
        responses.GET,
        f"{API}/csrf-token",
        callback=lambda r: (
            200,
            {},
            json.dumps({"token": next(tokens), "expiration": "2999-01-01T00:00:00Z"}),
        ),
    )
    mocked.patch(
        f"{API}/task_runs/{RUN_ID}",
        status=403,
        json={"detail": "Invalid CSRF token or client identifier."},
    )
    mocked.patch(f"{API}/task_runs/{RUN_ID}", status=204)
    SyncPrefectClient(API).set_task_run_name(RUN_ID, "x")
    sent = [(c.request.method, c.request.headers.get("Prefect-Csrf-Token")) for c in mocked.calls]
    assert sent == [("GET", None), ("PATCH", "old"), ("GET", None), ("PATCH", "new")]


def test_expired_token_is_fetched_again(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API}/csrf-token", json={"token": "t", "expiration": "2000-01-01T00:00:00Z"})
    mocked.patch(f"{API}/task_runs/{RUN_ID}", status=204)
    client = SyncPrefectClient(API)
    client.set_task_run_name(RUN_ID, "a")
    client.set_task_run_name(RUN_ID, "b")
    assert [c.request.method for c in mocked.calls] == ["GET", "PATCH", "GET", "PATCH"]


@pytest.mark.parametrize(
    "status, body",
    [(404, {"detail": "Not Found"}), (422, {"detail": "CSRF protection is disabled."})],
)
def test_csrf_switches_off_when_the_server_has_none(
    mocked: responses.RequestsMock, status: int, body: dict
) -> None:
    mocked.get(f"{API}/csrf-token", status=status, json=body)
    mocked.patch(f"{API}/task_runs/{RUN_ID}", status=204)
    client = SyncPrefectClient(API)
    client.set_task_run_name(RUN_ID, "a")
    client.set_task_run_name(RUN_ID, "b")
    assert [c.request.method for c in mocked.calls] == ["GET", "PATCH", "PATCH"]


def test_other_csrf_errors_propagate(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API}/csrf-token", status=401, json={"exception_message": "Unauthorized"})
    with pytest.raises(PrefectHTTPStatusError, match="401"):
        SyncPrefectClient(API).set_task_run_name(RUN_ID, "a")


def test_no_csrf_for_cloud_or_when_disabled(
    mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud = "https://api.prefect.cloud/api/accounts/a/workspaces/w"
    mocked.post(f"{cloud}/task_runs/{RUN_ID}/set_state", status=404, json={"detail": "x"})
    with pytest.raises(PrefectHTTPStatusError):
        SyncPrefectClient(cloud, api_key="k").set_task_run_state(RUN_ID, Running())
    monkeypatch.setenv("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")
    mocked.post(f"{API}/task_runs/", status=409, json={"detail": "conflict"})
    with pytest.raises(PrefectHTTPStatusError, match="409"):
        SyncPrefectClient(API).create_task_run(Task(name="t"), None, "0")
    assert all("csrf" not in c.request.url for c in mocked.calls)


# ---- redirects and secrets -------------------------------------------------------------------


def test_redirects_to_another_host_are_refused_so_no_credential_follows(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(f"{API}/hello", status=307, headers={"Location": "http://elsewhere.test/api/hello"})
    mocked.get("http://elsewhere.test/api/hello", json="👋")
    with pytest.raises(PrefectHTTPStatusError, match=r"another origin, http://elsewhere\.test:80"):
        SyncPrefectClient(API, api_key="secret").hello()
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer secret"
    assert len(mocked.calls) == 1


def test_secrets_never_show(
    mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    url = "http://user:pw-in-url@prefect.test/api"
    mocked.get(f"{API}/admin/version", status=401, json={"exception_message": "Unauthorized"})
    client = SyncPrefectClient(url, api_key="pnu_key", auth_string="admin:hunter2")
    with caplog.at_level(logging.DEBUG), pytest.raises(PrefectHTTPStatusError) as caught:
        client.api_version()
    shown = " ".join([repr(client), str(caught.value), repr(caught.value), caplog.text])
    for secret in ("pnu_key", "hunter2", "pw-in-url", "YWRtaW46aHVudGVyMg=="):
        assert secret not in shown
    assert redact_url(url) == API
    assert mocked.calls[0].request.url == f"{API}/admin/version"  # userinfo never sent


def test_userinfo_in_the_url_becomes_basic_auth(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API}/hello", json="👋")
    client = SyncPrefectClient("http://admin:p%40ss@prefect.test/api")
    client.hello()
    assert client.api_url == f"{API}/"
    assert mocked.calls[0].request.headers["Authorization"] == "Basic YWRtaW46cEBzcw=="


def test_status_error_is_a_requests_http_error(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API}/hello", status=503, json={"exception_message": "Service Unavailable"})
    with pytest.raises(requests.HTTPError) as caught:
        SyncPrefectClient(API).hello()
    error = caught.value
    assert isinstance(error, PrefectHTTPStatusError)
    assert (error.status_code, error.method, error.url) == (503, "GET", f"{API}/hello")
    assert error.detail == {"exception_message": "Service Unavailable"}
    assert error.response is not None and error.request is not None


def test_a_token_renewed_by_another_thread_is_reused_not_renewed_again(
    mocked: responses.RequestsMock,
) -> None:
    tokens = iter(["t1", "t2", "t3"])
    mocked.add_callback(responses.GET, f"{API}/csrf-token", callback=lambda r: (
        200, {}, json.dumps({"token": next(tokens), "expiration": "2999-01-01T00:00:00Z"})))
    client = SyncPrefectClient(API)
    csrf = transport(client).csrf
    assert csrf.headers()["Prefect-Csrf-Token"] == "t1"
    # Thread A is refused t1 and renews: t2.
    assert csrf.headers(refused="t1")["Prefect-Csrf-Token"] == "t2"
    # Thread B was refused t1 too, later: it gets t2 without a fetch that would revoke it.
    assert csrf.headers(refused="t1")["Prefect-Csrf-Token"] == "t2"
    assert len(mocked.calls) == 2


def test_tokens_are_renewed_shortly_before_they_expire(mocked: responses.RequestsMock) -> None:
    import datetime

    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=3)
    mocked.get(f"{API}/csrf-token", json={"token": "t", "expiration": soon.isoformat()})
    mocked.patch(f"{API}/task_runs/{RUN_ID}", status=204)
    client = SyncPrefectClient(API)
    client.set_task_run_name(RUN_ID, "a")
    time.sleep(2.4)  # within the last quarter of the 3 s lifetime
    client.set_task_run_name(RUN_ID, "b")
    assert [c.request.method for c in mocked.calls] == ["GET", "PATCH", "GET", "PATCH"]
