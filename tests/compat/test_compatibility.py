"""The unit and stub-server tests on every CPython we support (3.9 to 3.13), and once more
with the lowest dependency versions setup.cfg declares (on the lowest Python). The
interpreter running this suite is left out: the main run already ran them on it, with the
same declared requirements (and Prefect besides).

Each run gets its own virtualenv, cached outside the repository and keyed by interpreter
and pins (``tests/support/compat/venvs.py``); runs go two at a time (this project's CI machine has
two cores). A missing interpreter fails, naming it; so does a venv pip cannot build, with
pip's error.
"""

import concurrent.futures
import configparser
import os
import pathlib
import re
import subprocess
import sys
from typing import Dict, List, Tuple

import pytest
from support.compat.venvs import PYENV, VenvBuildError, cached_venv, find_python

pytestmark = pytest.mark.compat

ROOT = pathlib.Path(__file__).parents[2]
PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
THIS_PYTHON = "{}.{}".format(*sys.version_info[:2])
TEST_TOOLS = ["pytest>=7", "responses>=0.23", "requests-mock>=1.11", "opentelemetry-sdk>=1.20",
              "opentelemetry-instrumentation-requests>=0.41b0"]
#: The unit tests (tests/unit), but the one that compares with Prefect's client, which the
#: matrix venvs do not have; lint, packaging and charts are checked once, in the main run.
IGNORED = ["tests/unit/test_differential.py"]


def declared_requirements() -> List[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options"]["install_requires"].strip().splitlines()
    return [line.strip() for line in lines if line.strip()]


def floors(requirements: List[str]) -> List[str]:
    """``name>=X`` becomes ``name==X``: the oldest release we claim to support. A
    requirement without a floor stays as it is."""
    pinned = []
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([0-9][^,\s]*)\s*", spec)
        if match is None:
            pinned.append(requirement)
            continue
        pinned.append(f"{match[1]}=={match[2]}" + (f";{marker}" if marker else ""))
    return pinned


RUNS: Dict[str, Tuple[str, List[str], str]] = {
    **{f"python{minor}": (minor, declared_requirements(), "declared")
       for minor in PYTHONS if minor != THIS_PYTHON},
    "lowest declared dependencies": (PYTHONS[0], floors(declared_requirements()), "floors"),
}


def run_suite(minor: str, requirements: List[str], name: str, home: pathlib.Path) -> str:
    """Run the unit suite; return "" on success, else what failed."""
    python = find_python(minor)
    if python is None:
        return (f"no Python {minor} interpreter: looked for {PYENV}/versions/{minor}.*/bin/"
                f"python{minor} and python{minor} on PATH; install it (pyenv install {minor})")  # fmt: skip
    try:
        venv = cached_venv("pythons", name, python, [*requirements, *TEST_TOOLS])
    except VenvBuildError as exc:
        return str(exc)
    home.mkdir(parents=True, exist_ok=True)
    command = [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "-m", "not compat", "tests/unit", *(f"--ignore={path}" for path in IGNORED)]  # fmt: skip
    env = {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "HOME": str(home), "LANG": "C.UTF-8"}  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=900)  # fmt: skip
    last = (result.stdout.strip().splitlines() or [""])[-1]
    if result.returncode != 0 or " passed" not in last:
        return f"{' '.join(command)}\n{result.stdout[-4000:]}{result.stderr[-2000:]}"
    return ""


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, "concurrent.futures.Future[str]"]:
    """All runs, started at once, two at a time."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    home = tmp_path_factory.mktemp("homes")
    futures = {
        label: pool.submit(run_suite, minor, requirements, name, home / re.sub(r"\W", "_", label))
        for label, (minor, requirements, name) in RUNS.items()
    }
    pool.shutdown(wait=False)
    return futures


@pytest.mark.parametrize("label", list(RUNS))
def test_unit_suite(outcomes: Dict[str, "concurrent.futures.Future[str]"], label: str) -> None:
    minor, requirements, _ = RUNS[label]
    failure = outcomes[label].result(timeout=1800)
    assert failure == "", f"unit suite on Python {minor} with {requirements}:\n{failure}"


def test_floors_are_written_where_users_read_them() -> None:
    """The README states the same floors as setup.cfg."""
    readme = (ROOT / "README.md").read_text()
    for pin in floors(declared_requirements()):
        if "==" not in pin:
            continue
        name, version = pin.split(";")[0].split("==")
        assert f"{name} {version}" in readme or f"{name}>={version}" in readme, pin
