"""The three ways to test code that uses this client (README: "Testing code that uses
orchestration_client") run as written: each example is a pytest file, run by pytest in a
subprocess the way a user would run it."""

import os
import pathlib
import subprocess
import sys
from typing import Any, Callable, Dict

import pytest

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).parents[2]
TESTING = ROOT / "examples" / "testing"


def run_pytest(name: str, env: Dict[str, str], timeout: float = 180) -> "subprocess.CompletedProcess[str]":
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name],
        cwd=TESTING, env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True, text=True, timeout=timeout,
    )


def passed(result: "subprocess.CompletedProcess[str]", count: int) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert f"{count} passed" in result.stdout.splitlines()[-1], result.stdout[-500:]


def test_every_testing_example_is_run() -> None:
    ran = {"test_with_mocks.py", "test_with_vcrpy.py", "test_with_local_server.py"}
    assert {p.name for p in TESTING.glob("test_*.py")} == ran


def test_with_mocks(tmp_path: pathlib.Path) -> None:
    passed(run_pytest("test_with_mocks.py", {"HOME": str(tmp_path)}), 1)


def test_with_vcrpy_records_then_replays_without_the_server(
    start_server: Callable[..., Any], tmp_path: pathlib.Path
) -> None:
    server = start_server()
    env = {"PREFECT_API_URL": server.api_url, "CASSETTES": str(tmp_path), "HOME": str(tmp_path)}
    try:
        passed(run_pytest("test_with_vcrpy.py", env), 1)
    finally:
        server.stop()
    cassette = (tmp_path / "record_step.yaml").read_text()
    assert "set_state" in cassette and "client=" not in cassette
    passed(run_pytest("test_with_vcrpy.py", {**env, "VCR_RECORD_MODE": "none"}), 1)


def test_with_local_server(tmp_path: pathlib.Path) -> None:
    """No PREFECT_API_URL: the example's fixture starts the embedded server and stops it."""
    passed(run_pytest("test_with_local_server.py", {"HOME": str(tmp_path)}, timeout=300), 2)
