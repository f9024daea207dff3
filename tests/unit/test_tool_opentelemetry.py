"""OpenTelemetry's requests instrumentation: every call of ours is one client span with
method, URL and status; no span attribute holds a credential; retries happen inside the
span (the instrumentation wraps ``Session.send``, the retries run below it in urllib3)."""

import json
from typing import Iterator, List, Tuple

import pytest
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from support.stub_server import StubServer, json_reply
from support.tools_workflow import SocketPrefect, workflow

from orchestration_client import SyncPrefectClient, get_client

API_KEY = "pnu_otel_secret_key"
PASSWORD = "p4ss-w0rd-secret"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    RequestsInstrumentor().instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        RequestsInstrumentor().uninstrument()


def attributes(span: ReadableSpan) -> dict:
    return dict(span.attributes or {})


def method_url_status(span: ReadableSpan) -> Tuple[str, str, int]:
    attrs = attributes(span)
    method = attrs.get("http.request.method", attrs.get("http.method"))
    url = attrs.get("url.full", attrs.get("http.url"))
    status = attrs.get("http.response.status_code", attrs.get("http.status_code"))
    return str(method), str(url), int(status)  # type: ignore[arg-type]


@pytest.mark.parametrize("credential", ["api_key", "basic_in_url", "auth_string"])
def test_one_client_span_per_call_without_credentials(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, credential: str
) -> None:
    server = SocketPrefect()
    try:
        host = server.api_url.split("//", 1)[1]
        if credential == "api_key":
            monkeypatch.setenv("PREFECT_API_URL", server.api_url)
            monkeypatch.setenv("PREFECT_API_KEY", API_KEY)
        elif credential == "basic_in_url":
            monkeypatch.setenv("PREFECT_API_URL", f"http://admin:{PASSWORD}@{host}")
        else:
            monkeypatch.setenv("PREFECT_API_URL", server.api_url)
            monkeypatch.setenv("PREFECT_API_AUTH_STRING", f"admin:{PASSWORD}")
        with get_client() as client:
            workflow(client)
    finally:
        server.stop()
    finished: List[ReadableSpan] = list(spans.get_finished_spans())
    sent = [(m, p.split("?")[0]) for m, p, _, _ in server.seen]
    assert len(finished) == len(sent), "one span per request that reached the server"
    for span, (method, path) in zip(finished, sent):
        assert span.kind is SpanKind.CLIENT
        got_method, url, status = method_url_status(span)
        assert got_method == method and url.split("?")[0] == server.api_url[: -len("/api")] + path
        assert 200 <= status < 300
    dumped = json.dumps([attributes(s) for s in finished] + [s.name for s in finished])
    for secret in (API_KEY, PASSWORD, "admin:"):
        assert secret not in dumped, f"a span holds a credential: {secret}"


def test_a_retried_call_is_one_span_with_the_final_status(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub = StubServer(fallback=json_reply(200, b'"3.9.1"'))
    stub.script = [json_reply(503, b"{}", Retry_After="0.01"), json_reply(503, b"{}", Retry_After="0.01")]
    try:
        client = SyncPrefectClient(stub.api_url)
        assert client.api_version() == "3.9.1"
        client.__exit__(None, None, None)
    finally:
        stub.stop()
    assert len(stub.seen) == 3, "two 503s retried, then the answer"
    (span,) = spans.get_finished_spans()
    assert method_url_status(span)[2] == 200
