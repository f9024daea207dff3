"""Smoke test for an installed wheel, run from outside the source tree against a real server.

    PREFECT_API_URL=http://127.0.0.1:4200/api python wheel_smoke.py

Calls every documented member once, checks that the package came from site-packages (not
a source checkout) with its ``py.typed`` marker, and that the environment holds nothing but
the package and its runtime dependencies. Prints ``smoke ok`` and exits 0 on success.
"""

import importlib.metadata
import pathlib
import sys
import uuid

import orchestration_client
from orchestration_client import get_client
from orchestration_client.exceptions import ObjectNotFound
from orchestration_client.filters import TaskRunFilter, TaskRunFilterName
from orchestration_client.schemas import Task
from orchestration_client.states import Completed, Running

# requests and its own dependencies, msgspec, and tomli where msgspec.toml needs it.
ALLOWED = {"orchestration-client", "requests", "urllib3", "idna", "certifi",
           "charset-normalizer", "msgspec"}
if sys.version_info < (3, 11):
    ALLOWED.add("tomli")

package_dir = pathlib.Path(orchestration_client.__file__).parent
assert "site-packages" in package_dir.parts, f"imported from {package_dir}, not site-packages"
assert (package_dir / "py.typed").exists(), "py.typed is missing from the wheel"

installed = {
    (dist.metadata["Name"] or "").lower().replace("_", "-")
    for dist in importlib.metadata.distributions()
}
unexpected = sorted(installed - ALLOWED)
assert not unexpected, f"installed beyond the runtime dependencies: {unexpected}"
assert {"orchestration-client", "requests", "urllib3", "msgspec"} <= installed, installed
banned = sorted(m for m in ("prefect", "pydantic", "httpx", "anyio") if m in sys.modules)
assert not banned, f"imported {banned}"

try:
    get_client(sync_client=False)
except NotImplementedError:
    pass
else:
    raise AssertionError("get_client(sync_client=False) must refuse")

with get_client() as client:
    assert client.api_url.endswith("/api/"), client.api_url
    assert client.api_healthcheck() is None
    assert client.hello().status_code == 200
    assert client.api_version().startswith("3."), client.api_version()
    assert client.client_version().startswith("3.")
    client.raise_for_api_version_mismatch()
    key = uuid.uuid4().hex
    run = client.create_task_run(Task(name=f"smoke-{key}"), flow_run_id=None, dynamic_key=key)
    assert client.read_task_run(run.id).id == run.id
    client.set_task_run_name(run.id, f"renamed-{key}")
    found = client.read_task_runs(
        task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=[f"renamed-{key}"]))
    )
    assert [r.id for r in found] == [run.id], found
    assert client.set_task_run_state(run.id, Running()).status.value == "ACCEPT"
    assert client.set_task_run_state(run.id, Completed()).status.value == "ACCEPT"
    history = [state.type.value for state in client.read_task_run_states(run.id)]
    assert history == ["PENDING", "RUNNING", "COMPLETED"], history
    try:
        client.read_task_run(uuid.uuid4())
    except ObjectNotFound:
        pass
    else:
        raise AssertionError("an unknown id must raise ObjectNotFound")
print("smoke ok")
