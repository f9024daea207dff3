"""An ASGI app as ``api``: Prefect's own ``create_app()`` served from a background thread.

Prefect's sync client cannot use an app (no transport, empty base URL); ours serves it on
127.0.0.1 and talks HTTP to it, so every documented member works.
"""

import pathlib
import threading
from typing import Any, Iterator

import pytest

from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import ClientClosedError, ObjectNotFound
from orchestration_client.filters import TaskRunFilter, TaskRunFilterId
from orchestration_client.schemas import SetStateStatus, StateType, Task
from orchestration_client.sorting import TaskRunSort
from orchestration_client.states import Completed, Running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, template_db: pathlib.Path) -> Iterator[Any]:
    home = tmp_path_factory.mktemp("asgi-home")
    (home / "prefect.db").write_bytes(template_db.read_bytes())
    patch = pytest.MonkeyPatch()
    patch.setenv("PREFECT_HOME", str(home))
    patch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    patch.setenv("PREFECT_SERVER_UI_ENABLED", "false")
    from prefect.server.api.server import create_app

    yield create_app(ephemeral=True, ignore_cache=True)
    patch.undo()


def test_every_member_through_an_asgi_app(app: Any) -> None:
    threads_before = threading.active_count()
    client = SyncPrefectClient(app)
    with client:
        assert client.api_url.startswith("http://127.0.0.1:") and client.api_url.endswith("/api/")
        assert client.api_healthcheck() is None
        assert client.hello().json() == "👋"
        assert client.api_version().startswith("3.")
        assert client.client_version() == "3.9.1"
        client.raise_for_api_version_mismatch()
        run = client.create_task_run(Task(name="asgi", tags=["in-process"]), None, "0")
        assert client.create_task_run(Task(name="asgi"), None, "0").id == run.id
        assert client.set_task_run_name(run.id, "asgi-run").status_code == 204
        assert client.read_task_run(run.id).name == "asgi-run"
        assert client.set_task_run_state(run.id, Running()).status == SetStateStatus.ACCEPT
        assert client.set_task_run_state(run.id, Completed()).status == SetStateStatus.ACCEPT
        found = client.read_task_runs(
            task_run_filter=TaskRunFilter(id=TaskRunFilterId(any_=[run.id])),
            sort=TaskRunSort.NAME_ASC, limit=5,
        )
        assert [r.state_type for r in found] == [StateType.COMPLETED]
        assert [s.name for s in client.read_task_run_states(run.id)] == [
            "Pending", "Running", "Completed"]
        with pytest.raises(ObjectNotFound):
            client.read_task_run("00000000-0000-0000-0000-000000000000")
    # Closing the client stops the server thread and refuses further use.
    assert threading.active_count() <= threads_before
    with pytest.raises(ClientClosedError):
        client.hello()


def test_something_that_is_not_an_app_is_refused() -> None:
    with pytest.raises(TypeError, match="URL string or an ASGI application"):
        SyncPrefectClient(42)
