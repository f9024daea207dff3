"""Every member and every filter class against real Prefect servers of older releases, one
server at a time, each from its own cached virtualenv (see ``venvs.py``).

On each server every check must pass, or, for a feature the release lacks, fail with a
``FeatureNotSupported`` that names it. A venv that cannot be built fails the test with
pip's error. The full matrix with Prefect's own client beside ours is
``benchmarks/compat.py``.
"""

import json
import subprocess
from typing import Any, Iterator, NamedTuple

import pytest
from support.compat.checks import ALL, Check, World, evaluate, ours, version_tuple
from support.compat.defaults import our_defaults, server_defaults_script
from support.compat.servers import CI_SERVERS, VenvBuildError, server, server_venv

from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import FeatureNotSupported
from orchestration_client.filters import TaskRunFilter, TaskRunFilterEndTime

pytestmark = [pytest.mark.compat, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

#: Fields a release may lack: exactly those behind a FeatureNotSupported.
NEWER_FIELDS = {
    "FlowRunFilterTags.any_", "DeploymentFilterTags.any_", "DeploymentFilterId.not_any_",
    "FlowRunFilter.created_by", "TaskRunFilter.end_time", "TaskRunCreate.labels",
    *(f"FlowRunFilterCreatedBy.{f}" for f in ("operator", "id_", "type_", "is_null_")),
    *(f"TaskRunFilterEndTime.{f}" for f in ("before_", "after_", "is_null_")),
}  # fmt: skip


class Running(NamedTuple):
    version: str
    api_url: str
    python: str
    world: World
    client: SyncPrefectClient


@pytest.fixture(scope="module", params=CI_SERVERS)
def running(request: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    version = request.param
    try:
        venv = server_venv(version)
    except VenvBuildError as exc:
        pytest.fail(f"could not build the Prefect {version} server venv:\n{exc}", pytrace=False)
    process = server(version, tmp_path_factory.mktemp(f"prefect-{version}"))
    process.start(timeout=180)
    try:
        world = World(process.api_url, version)
        with SyncPrefectClient(process.api_url) as client:
            yield Running(version, process.api_url, str(venv / "bin" / "python"), world, client)
    finally:
        process.stop()


@pytest.mark.parametrize("check", ALL, ids=[c.name for c in ALL])
def test_check(running: Running, check: Check) -> None:
    outcome = evaluate(check, running.client, ours(), running.world)
    assert not outcome.startswith("FAIL"), f"Prefect {running.version}: {outcome}"


def test_omitted_defaults_are_this_servers_defaults(running: Running) -> None:
    """Each field we omit at its default means the same to this release; each field it
    lacks is one behind a FeatureNotSupported."""
    theirs = json.loads(subprocess.run([running.python, "-c", server_defaults_script()],
                                       capture_output=True, text=True, check=True).stdout)  # fmt: skip
    ours_ = our_defaults()
    assert {k: (v, theirs[k]) for k, v in ours_.items() if k in theirs and theirs[k] != v} == {}
    assert set(ours_) - set(theirs) <= NEWER_FIELDS


def test_feature_error_learns_the_version_once(running: Running) -> None:
    """A fresh client that never asked for the version still names it, asking only after
    the refusal; a release that has the feature just answers."""
    with SyncPrefectClient(running.api_url) as client:
        query = {"task_run_filter": TaskRunFilter(end_time=TaskRunFilterEndTime())}
        if version_tuple(running.version) >= (3, 6):
            assert isinstance(client.read_task_runs(**query), list)
            return
        with pytest.raises(FeatureNotSupported) as caught:
            client.read_task_runs(**query)
    error = caught.value
    assert error.server_version == running.version and error.minimum_version == "3.6"
    assert f"needs Prefect 3.6 or later; this server runs Prefect {running.version}" in str(error)
