"""A short workflow that calls every member once, and a fake Prefect API for it, shared by
the tests that prove the requests ecosystem's tools work with this client (``responses``,
``requests-mock``, ``vcrpy``, OpenTelemetry).

``route()`` answers like a Prefect 3.9.1 server with CSRF on, from replies captured from a
real one (tests/fixtures). ``SocketPrefect`` serves the same answers on 127.0.0.1 and records
each request as it arrived on the socket: that is the ground truth a mock must also see.
"""

import http.server
import json
import pathlib
import re
import threading
import uuid
from typing import Any, Dict, List, Mapping, Optional, Tuple

from orchestration_client import SyncPrefectClient
from orchestration_client.filters import TaskRunFilter, TaskRunFilterName
from orchestration_client.schemas import Task
from orchestration_client.states import Running

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures"
RUN_ID = json.loads((FIXTURES / "task_run_created.json").read_text())["id"]
CSRF_TOKEN = "csrf-token-from-the-server"
#: Headers a mock and the socket may legitimately disagree on: the socket adds Host, and
#: the CSRF client id is random per client.
UNCOMPARED = {"host", "prefect-csrf-client"}

Seen = Tuple[str, str, Dict[str, str], Optional[Any]]


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def route(method: str, path: str) -> Tuple[int, bytes]:
    """Status and body a Prefect 3.9.1 server gives for ``method path`` (path from /api)."""
    fixed = {
        ("GET", "/api/health"): (200, b"true"),
        ("GET", "/api/hello"): (200, json.dumps("👋").encode()),
        ("GET", "/api/admin/version"): (200, b'"3.9.1"'),
        ("GET", "/api/csrf-token"): (
            200, json.dumps({"token": CSRF_TOKEN, "client": "x",
                             "expiration": "2999-01-01T00:00:00Z"}).encode()),
        ("POST", "/api/task_runs/"): (201, fixture("task_run_created")),
        ("POST", "/api/task_runs/filter"): (200, fixture("task_runs_filter")),
        ("GET", "/api/task_run_states/"): (200, fixture("task_run_states")),
    }  # fmt: skip
    if (method, path) in fixed:
        return fixed[(method, path)]
    if method == "POST" and path.endswith("/set_state"):
        return 201, fixture("result_accept")
    if method == "PATCH" and path.startswith("/api/task_runs/"):
        return 204, b""
    if method == "GET" and path == f"/api/task_runs/{RUN_ID}":
        return 200, fixture("task_run_created")
    return 404, b'{"detail":"Not Found"}'


def workflow(client: SyncPrefectClient) -> Dict[str, Any]:
    """Every documented member once; returns what each gave back."""
    out: Dict[str, Any] = {"api_url": client.api_url}
    out["health"] = client.api_healthcheck()
    out["hello"] = client.hello().json()
    out["version"] = client.api_version()
    out["client_version"] = client.client_version()
    client.raise_for_api_version_mismatch()
    run = client.create_task_run(Task(name="tools"), flow_run_id=None, dynamic_key="0")
    out["run"] = run
    out["read"] = client.read_task_run(run.id)
    out["runs"] = client.read_task_runs(
        task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=["tools"])), limit=5
    )
    out["renamed"] = client.set_task_run_name(run.id, "tools-renamed").status_code
    out["running"] = client.set_task_run_state(run.id, Running())
    out["history"] = client.read_task_run_states(run.id)
    return out


def normalise(method: str, url: str, headers: Mapping[str, str], body: Optional[bytes]) -> Seen:
    """One request as comparable data: path and query (any host), headers lower-cased
    without the uncompared ones, and the JSON body parsed."""
    path = "/api" + url.split("/api", 1)[1]
    path = re.sub(r"client=[0-9a-f-]{36}", "client=<random client id>", path)
    kept = {k.lower(): v for k, v in headers.items() if k.lower() not in UNCOMPARED}
    parsed = json.loads(body) if body else None
    if path.endswith("/set_state"):  # a fresh transition_id per proposal (_exactly_once)
        parsed["state"]["state_details"]["transition_id"] = "<fresh per proposal>"
    return method, path, kept, parsed


class SocketPrefect:
    """The fake Prefect on a real socket on 127.0.0.1, recording what arrives."""

    def __init__(self) -> None:
        self.seen: List[Seen] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                recorder.seen.append(normalise(self.command, self.path, self.headers, body))
                status, payload = route(self.command, self.path.split("?")[0])
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = _handle

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.api_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def new_key() -> str:
    return uuid.uuid4().hex
