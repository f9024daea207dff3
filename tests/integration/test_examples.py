"""Every example runs as-is against the real server, and its output is checked. The
quickstart also runs with no PREFECT_API_URL at all, on the embedded server."""

import ast
import importlib.metadata
import os
import pathlib
import re
import subprocess
import sys
import uuid
from typing import Any, Callable, Dict, Iterator

import pytest
from support.local_servers import servers_under, stop_servers_under

from orchestration_client import SyncPrefectClient

pytestmark = pytest.mark.integration

EXAMPLES = pathlib.Path(__file__).parents[2] / "examples"


def run_example(name: str, env: Dict[str, str], timeout: float = 120) -> "subprocess.CompletedProcess[str]":
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)], env={**clean, **env}, capture_output=True,
        text=True, timeout=timeout,
    )


def api(api_url: str) -> Dict[str, str]:
    return {"PREFECT_API_URL": api_url}


def test_every_example_is_tested() -> None:
    tested = set(re.findall(r'run_example\("(\w+\.py)"', pathlib.Path(__file__).read_text()))
    assert tested == {path.name for path in EXAMPLES.glob("*.py")}


def normalised(output: str) -> str:
    """An example's output without what differs between runs: ids, batch names, times and
    the random names the server gives task runs."""
    output = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", output)
    output = re.sub(r"batch-[0-9a-f]{6}", "batch-<b>", output)
    output = re.sub(r"\d\d:\d\d:\d\d\.\d+", "<time>", output)
    output = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", output)
    return re.sub(r"created task run \S+ ", "created task run <name> ", output)


def test_every_example_says_what_it_shows_and_how_to_run_it() -> None:
    for path in EXAMPLES.glob("*.py"):
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and len(doc.splitlines()[0]) > 20, f"{path.name} has no docstring"
        assert f"python examples/{path.name}" in doc, f"{path.name}: the command that runs it"


@pytest.mark.parametrize("name", ["quickstart.py", "filtering.py", "retries_and_failures.py",
                                  "migration.py", "health.py"])
def test_every_example_can_be_run_again_and_again(api_url: str, name: str) -> None:
    """A second run tells the same story about task runs of its own: nothing of the first
    run shows up in it (run_example("health.py") etc. are covered above)."""
    first, second = (run_example(name, api(api_url)) for _ in range(2))
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert normalised(first.stdout) == normalised(second.stdout)
    ids = [set(re.findall(r"[0-9a-f]{8}-[0-9a-f-]{27}", r.stdout)) for r in (first, second)]
    assert not ids[0] & ids[1], "the second run printed a task run of the first"


def test_quickstart_twice_prints_two_task_runs_each_with_its_own_history(api_url: str) -> None:
    outputs = [run_example("quickstart.py", api(api_url)).stdout for _ in range(2)]
    created = [re.search(r"created task run \S+ \(([0-9a-f-]{36})\)", o) for o in outputs]
    assert created[0] and created[1] and created[0][1] != created[1][1]
    for output in outputs:
        assert len(re.findall(r"^\s+\S+\s+(PENDING|RUNNING|COMPLETED)\s", output, re.M)) == 3


@pytest.fixture(scope="module")
def embedded_home(
    tmp_path_factory: pytest.TempPathFactory, template_db: pathlib.Path
) -> Iterator[pathlib.Path]:
    """One PREFECT_HOME for the examples run with no URL: the first starts the shared local
    server, the others use it, as a user's scripts do; it is stopped at the end."""
    home = tmp_path_factory.mktemp("embedded")
    (home / "prefect.db").write_bytes(template_db.read_bytes())
    yield home
    stop_servers_under(home)


@pytest.mark.parametrize("name", ["filtering.py", "retries_and_failures.py", "migration.py",
                                  "health.py"])
def test_every_example_runs_on_the_embedded_server(
    api_url: str, embedded_home: pathlib.Path, name: str
) -> None:
    """No URL at all: the example uses the local server (the quickstart has its own test
    below) and tells the same story as against PREFECT_API_URL."""
    local = run_example(name, {"PREFECT_HOME": str(embedded_home), "HOME": str(embedded_home)},
                        timeout=180)
    assert local.returncode == 0, local.stderr[-3000:]
    assert "local Prefect server at http://127.0.0.1:" in local.stderr
    assert len(servers_under(embedded_home)) == 1
    remote = run_example(name, api(api_url))
    assert normalised(local.stdout) == normalised(remote.stdout)


def test_quickstart(api_url: str) -> None:
    result = run_example("quickstart.py", api(api_url))
    assert result.returncode == 0, result.stderr
    assert "proposed Running: ACCEPT" in result.stdout
    history = re.findall(r"^\s+\S+\s+(\w+)\s+(\w+)$", result.stdout, re.M)
    assert history == [("PENDING", "Pending"), ("RUNNING", "Running"), ("COMPLETED", "Completed")]


def test_filtering(api_url: str) -> None:
    result = run_example("filtering.py", api(api_url))
    assert result.returncode == 0, result.stderr
    pages = re.findall(r"page at offset (\d+): \[(.*)\]", result.stdout)
    assert [int(offset) for offset, _ in pages] == [0, 3, 6]
    assert [len(names.split(", ")) for _, names in pages] == [3, 3, 1]
    assert re.search(r"even parts: \['batch-\w+-0', 'batch-\w+-2', 'batch-\w+-4', 'batch-\w+-6'\]", result.stdout)
    assert re.search(r"failed parts: \['batch-\w+-3'\]", result.stdout)


def test_retries_and_failures(api_url: str) -> None:
    result = run_example("retries_and_failures.py", api(api_url))
    assert result.returncode == 0, result.stderr
    assert "Failed -> REJECT now AwaitingRetry" in result.stdout
    assert "Cancelling -> ABORT  now Completed (Run is already COMPLETED.)" in result.stdout
    assert "history: Pending -> Running -> AwaitingRetry -> Retrying -> Completed" in result.stdout
    assert "run count: 2" in result.stdout


def test_health_up_and_down(api_url: str) -> None:
    from support.prefect_server import free_port

    healthy = run_example("health.py", api(api_url))
    assert healthy.returncode == 0, healthy.stderr
    server = importlib.metadata.version("prefect")  # 3.9.x, or older on Python 3.9 and 3.10
    assert "healthy:" in healthy.stdout and f"server {server}," in healthy.stdout
    down = run_example("health.py", {"PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"})
    assert down.returncode == 1
    assert down.stderr.startswith("unhealthy: Could not reach the Prefect API")


def test_migration(api_url: str) -> None:
    result = run_example("migration.py", api(api_url))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "extract-renamed: Completed, tags ['etl']"


def test_quickstart_on_the_embedded_server(
    local_home: Callable[[str], pathlib.Path], start_server: Callable[..., Any]
) -> None:
    """No PREFECT_API_URL: the first run starts the shared local server in PREFECT_HOME, the
    second uses it, and `server stop` ends it; the data stays in PREFECT_HOME."""
    home = local_home("home")
    result = run_example("quickstart.py", {"PREFECT_HOME": str(home)}, timeout=180)
    assert result.returncode == 0, result.stderr
    started = re.search(r"started a local Prefect server at (http://127\.0\.0\.1:\d+/api) in "
                        r"[\d.]+ s", result.stderr)
    assert started, result.stderr
    again = run_example("quickstart.py", {"PREFECT_HOME": str(home)}, timeout=60)
    assert again.returncode == 0, again.stderr
    assert f"using the local Prefect server at {started[1]}" in again.stderr
    stop = subprocess.run([sys.executable, "-m", "orchestration_client", "server", "stop"],
                          env={"PATH": os.environ["PATH"], "PREFECT_HOME": str(home)},
                          capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0 and stop.stdout.startswith(
        f"stopped the local Prefect server at {started[1]}"), stop.stdout + stop.stderr
    run_id = uuid.UUID(re.search(r"\(([0-9a-f-]{36})\)", result.stdout)[1])  # type: ignore[index]
    # The data lives in PREFECT_HOME: a server started there later still has the run.
    server = start_server(home=home)
    try:
        with SyncPrefectClient(server.api_url) as client:
            names = [s.name for s in client.read_task_run_states(run_id)]
        assert names == ["Pending", "Running", "Completed"]
    finally:
        server.stop()


def test_quickstart_on_a_server_of_its_own(local_home: Callable[[str], pathlib.Path]) -> None:
    """ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT=0: a server for this run only, as before."""
    home = local_home("home")
    result = run_example("quickstart.py", {"PREFECT_HOME": str(home),
                                           "ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT": "0"})
    assert result.returncode == 0, result.stderr
    assert re.search(r"started a local Prefect server at http://127\.0\.0\.1:\d+/api in [\d.]+ s",
                     result.stderr)
    assert "for this process only" in result.stderr
    assert "stopped the local Prefect server" in result.stderr
    assert not servers_under(home)


def test_embedded_server_stops_at_exit_when_the_client_is_never_closed(
    tmp_path: pathlib.Path, template_db: pathlib.Path
) -> None:
    """With a server of its own (timeout 0), even a client never closed stops it at exit."""
    import requests

    (tmp_path / "prefect.db").write_bytes(template_db.read_bytes())
    code = (
        "import logging; logging.basicConfig(level=logging.INFO)\n"
        "from orchestration_client import get_client\n"
        "client = get_client()\n"
        "print(client.api_url, client.hello().json())\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    result = subprocess.run([sys.executable, "-c", code],
                            env={**clean, "PREFECT_HOME": str(tmp_path),
                                 "ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT": "0"},
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    api_url, greeting = result.stdout.split()
    assert greeting == "👋"
    assert "stopped the local Prefect server" in result.stderr  # by the atexit hook
    with pytest.raises(requests.ConnectionError):
        requests.get(api_url + "health", timeout=2)


def test_no_url_and_no_server_extra_gives_the_hint() -> None:
    """Without prefect importable, the error says what to set or install."""
    code = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'prefect' else real(name, *a)\n"
        "from orchestration_client import get_client\n"
        "try:\n    get_client()\nexcept ValueError as e:\n    print(e)\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    result = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True,
                            text=True, timeout=60)
    assert "Set PREFECT_API_URL" in result.stdout
    assert "pip install 'orchestration_client[server]'" in result.stdout
