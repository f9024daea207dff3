"""Shared fixtures. The real Prefect server is started once per session, on demand."""

import os
import pathlib
import sys
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from support.local_servers import isolate_prefect_home, local_home, no_local_server_left  # noqa: F401
from support.prefect_server import PrefectServer, migrate_template

FIXTURES = pathlib.Path(__file__).parent / "fixtures"

# The suite must never reach a configured Prefect; tests set what they need.
for _name in [name for name in os.environ if name.startswith("PREFECT_")]:
    del os.environ[_name]
isolate_prefect_home()  # nor a developer's shared local server in ~/.prefect


@pytest.fixture
def fixture_bytes() -> Callable[[str], bytes]:
    return lambda name: (FIXTURES / f"{name}.json").read_bytes()


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A migrated database, made once per session and copied into every server's home."""
    return migrate_template(tmp_path_factory.mktemp("prefect-template"))


@pytest.fixture(scope="session")
def start_server(
    tmp_path_factory: pytest.TempPathFactory, template_db: pathlib.Path
) -> Iterator[Callable[..., PrefectServer]]:
    """Start more servers (with extra env); each is stopped when the session ends, or
    earlier by the test that started it."""
    started: List[PrefectServer] = []

    def start(
        env: Optional[Dict[str, str]] = None, home: Optional[pathlib.Path] = None, **kwargs: Any
    ) -> PrefectServer:
        home = home or tmp_path_factory.mktemp("prefect-home")
        server = PrefectServer(home, template_db, env=env, **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def prefect_server(start_server: Callable[..., PrefectServer]) -> PrefectServer:
    """The session's shared real Prefect 3 server (SQLite, no services)."""
    return start_server()


@pytest.fixture(scope="session")
def api_url(prefect_server: PrefectServer) -> str:
    return prefect_server.api_url


class Seed:
    """Flows, flow runs and deployments made with plain HTTP, for filter tests."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self.session = requests.Session()

    def post(self, path: str, body: Dict[str, Any]) -> Dict[str, Any]:
        reply = self.session.post(self.api_url + path, json=body, timeout=30)
        reply.raise_for_status()
        result: Dict[str, Any] = reply.json()
        return result

    def flow(self, name: Optional[str] = None, tags: Optional[List[str]] = None) -> Dict[str, Any]:
        return self.post(
            "/flows/", {"name": name or f"flow-{uuid.uuid4().hex[:8]}", "tags": tags or []}
        )

    def flow_run(self, flow_id: str, **fields: Any) -> Dict[str, Any]:
        body = {"flow_id": flow_id, "state": {"type": "RUNNING"}, **fields}
        return self.post("/flow_runs/", body)

    def deployment(self, flow_id: str, name: str, **fields: Any) -> Dict[str, Any]:
        return self.post("/deployments/", {"flow_id": flow_id, "name": name, **fields})


@pytest.fixture(scope="session")
def seed(api_url: str) -> Seed:
    return Seed(api_url)
