"""Lint and types are part of the suite, so the README's one test command covers them."""

import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import urllib3

ROOT = pathlib.Path(__file__).parents[2]


def tool(name: str) -> str:
    found = pathlib.Path(sys.executable).with_name(name)
    path = str(found) if found.exists() else shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return path


def test_ruff() -> None:
    result = subprocess.run([tool("ruff"), "check", "orchestration_client", "tests", "examples",
                             "benchmarks"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(
    int(urllib3.__version__.split(".")[0]) < 2,
    reason="typed against urllib3 2's own annotations; Python 3.9's test extra gets urllib3 "
    "1.26 (vcrpy pins it there)",
)
def test_mypy_strict() -> None:
    result = subprocess.run([tool("mypy"), "--strict", "orchestration_client"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n#[^\n]*\n([^\n]+)\n```", readme)
    assert len(commands) >= 2, "the README starts with two set-up commands"
    assert "python -m pytest" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text().splitlines()
