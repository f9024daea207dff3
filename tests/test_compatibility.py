"""The oldest supported stack: Python 3.9 with urllib3 1.26 (what botocore still pins on
Python 3.9, e.g. in AWS Lambda). The unit and stub-server tests run again there, in a
fresh virtualenv."""

import glob
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).parents[1]
OLDEST = ["urllib3==1.26.20", "requests>=2.28", "msgspec>=0.18", "tomli>=1.1.0",
          "pytest", "responses"]


def python39() -> str:
    found = sorted(glob.glob("/root/.pyenv/versions/3.9*/bin/python3.9")) or [
        path for path in [shutil.which("python3.9")] if path
    ]
    if not found:
        pytest.skip("no Python 3.9 interpreter on this machine")
    return found[-1]


def test_unit_suite_on_python39_with_urllib3_126(tmp_path: pathlib.Path) -> None:
    venv = tmp_path / "py39"
    subprocess.run([python39(), "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", *OLDEST], check=True,
                   capture_output=True, timeout=600)
    result = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests",
         "--ignore=tests/integration", "--ignore=tests/test_differential.py",
         "--ignore=tests/test_quality.py", "--ignore=tests/test_compatibility.py"],
        cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]
