"""The README's commands work on every Python we declare, as a newcomer types them.

* Command 1 (install with the ``server`` extra, run the quickstart) runs verbatim, in a fresh
  copy of the repository and a fresh virtualenv, with an empty ``HOME`` and no ``PREFECT_*``
  variable, on CPython 3.9 and 3.10, where the extra must pick an older Prefect (3.9 needs
  Python 3.11+). On 3.11 the main run proves it (the test extra installs the same Prefect).
* The test extra of command 2 resolves on each of 3.9 to 3.13 (``pip install --dry-run``),
  with the Prefect the README promises for that Python.

Only pip's download cache is shared (``$ORCHESTRATION_CLIENT_CACHE/pip``), so a run costs the
install, not the downloads. Marked ``compat``: a few minutes of pip.
"""

import concurrent.futures
import contextlib
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import time
from typing import Dict, List, NamedTuple

import pytest
from support.compat.venvs import CACHE, PYENV, find_python

pytestmark = pytest.mark.compat

ROOT = pathlib.Path(__file__).parents[2]
PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
COMMAND_1_PYTHONS = ["3.9", "3.10"]
#: The Prefect release series the README says the embedded server is on, per Python.
EMBEDDED_PREFECT = {"3.9": "3.4.25", "3.10": "3.8", "3.11": "3.9", "3.12": "3.9", "3.13": "3.9"}
PIP_TIMEOUT = 1500


class Outcome(NamedTuple):
    returncode: int
    output: str
    seconds: float
    installed: Dict[str, str]


def readme_command(number: int) -> str:
    """The one command line of the README block that starts with ``# <number>.``."""
    readme = (ROOT / "README.md").read_text()
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        lines = [line for line in block.splitlines() if line.strip()]
        if lines and lines[0].startswith(f"# {number}."):
            commands = [line for line in lines if not line.startswith("#")]
            assert len(commands) == 1, f"README command {number} is not one line: {commands}"
            return commands[0]
    raise AssertionError(f"README.md has no bash block starting with '# {number}.'")


def fresh_tree(destination: pathlib.Path) -> pathlib.Path:
    """The repository's tracked files (as they are now) in ``destination``: a fresh clone.
    Outside a git checkout (an unpacked sdist), everything but build and cache folders."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, timeout=60)
    if listed.returncode == 0 and listed.stdout:
        names = [name for name in listed.stdout.decode().split("\0") if name]
    else:
        skip = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache", ".mypy_cache"}
        names = [str(path.relative_to(ROOT)) for path in ROOT.rglob("*")
                 if path.is_file() and not skip & set(path.relative_to(ROOT).parts)]  # fmt: skip
    for name in names:
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def bare_environment(python: str, where: pathlib.Path) -> Dict[str, str]:
    """A newcomer's shell: ``python3`` is the interpreter under test, ``HOME`` is empty,
    nothing from this session's environment but pip's download cache."""
    bin_dir = where / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python3").symlink_to(python)
    home = where / "home"
    home.mkdir()
    return {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PIP_CACHE_DIR": str(CACHE / "pip"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_PROGRESS_BAR": "off",
    }


def leftover_processes(marker: str) -> List[int]:
    """Pids of processes whose command line mentions ``marker`` (a temp path of one run)."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry.name))
    return found


def stop_leftovers(tree: pathlib.Path, env: Dict[str, str]) -> List[int]:
    """Stop what the command left running (a shared local server, if this version keeps
    one); return the pids that were still running after that and had to be killed."""
    python = tree / ".venv" / "bin" / "python"
    if (tree / "orchestration_client" / "__main__.py").exists() and python.exists():
        subprocess.run(
            [str(python), "-m", "orchestration_client", "server", "stop"],
            cwd=tree, env=env, capture_output=True, timeout=120,
        )  # fmt: skip
    deadline = time.monotonic() + 10
    while leftover_processes(str(tree)) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = leftover_processes(str(tree))
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return left


def run_command_1(minor: str, where: pathlib.Path) -> Outcome:
    python = find_python(minor)
    if python is None:
        pytest.fail(f"no Python {minor}: looked in {PYENV}/versions and PATH")
    env = bare_environment(python, where)
    tree = fresh_tree(where / "orchestration_client")
    started = time.monotonic()
    try:
        result = subprocess.run(
            ["bash", "-c", readme_command(1)],
            cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=PIP_TIMEOUT,
        )  # fmt: skip
    finally:
        seconds = time.monotonic() - started
        killed = stop_leftovers(tree, env)
    assert not killed, f"command 1 on Python {minor} left processes running: {killed}"
    freeze = subprocess.run(
        [str(tree / ".venv" / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    installed = {
        item["name"].lower(): item["version"] for item in json.loads(freeze.stdout or "[]")
    }
    return Outcome(result.returncode, result.stdout, seconds, installed)


def resolve_test_extra(minor: str, where: pathlib.Path) -> Outcome:
    """What ``pip install -e '.[test]'`` would install on Python ``minor``, without
    installing it (pip's resolver and report)."""
    python = find_python(minor)
    if python is None:
        pytest.fail(f"no Python {minor}: looked in {PYENV}/versions and PATH")
    where.mkdir(parents=True)
    env = bare_environment(python, where)
    report = where / "report.json"
    started = time.monotonic()
    result = subprocess.run(
        [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
         "--report", str(report), "-e", ".[test]"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=PIP_TIMEOUT,
    )  # fmt: skip
    installed: Dict[str, str] = {}
    if report.exists():
        for item in json.loads(report.read_text())["install"]:
            installed[item["metadata"]["name"].lower()] = item["metadata"]["version"]
    return Outcome(result.returncode, result.stdout, time.monotonic() - started, installed)


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Dict[str, "concurrent.futures.Future[Outcome]"]:
    """Every run, started at once, two at a time (the CI machine has two cores)."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    root = tmp_path_factory.mktemp("install-commands")
    futures = {
        **{f"command-1-{minor}": pool.submit(run_command_1, minor, root / f"c1-{minor}")
           for minor in COMMAND_1_PYTHONS},
        **{f"test-extra-{minor}": pool.submit(resolve_test_extra, minor, root / f"t-{minor}")
           for minor in PYTHONS},
    }  # fmt: skip
    pool.shutdown(wait=False)
    return futures


def test_readme_states_the_embedded_prefect_per_python() -> None:
    """The README's one line on it says what the runs below check."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    for claim in (
        "Prefect 3.9.x on Python 3.11+",
        "Prefect 3.8.x on 3.10",
        "Prefect 3.4.25 on 3.9",
    ):
        assert claim in readme, claim
    assert EMBEDDED_PREFECT == {"3.9": "3.4.25", "3.10": "3.8", "3.11": "3.9", "3.12": "3.9",
                                "3.13": "3.9"}  # fmt: skip


@pytest.mark.parametrize("minor", COMMAND_1_PYTHONS)
def test_readme_command_1(outcomes: Dict[str, "concurrent.futures.Future[Outcome]"],
                          minor: str) -> None:  # fmt: skip
    outcome = outcomes[f"command-1-{minor}"].result(timeout=2 * PIP_TIMEOUT)
    assert outcome.returncode == 0, (
        f"command 1 failed on Python {minor} after {outcome.seconds:.0f} s:\n"
        f"{outcome.output[-6000:]}"
    )
    assert "state history" in outcome.output and "COMPLETED" in outcome.output, outcome.output
    prefect = outcome.installed.get("prefect", "")
    assert prefect.startswith(EMBEDDED_PREFECT[minor]), (minor, prefect)
    print(f"command 1 on Python {minor}: {outcome.seconds:.0f} s, Prefect {prefect}")


@pytest.mark.parametrize("minor", PYTHONS)
def test_test_extra_resolves(outcomes: Dict[str, "concurrent.futures.Future[Outcome]"],
                             minor: str) -> None:  # fmt: skip
    outcome = outcomes[f"test-extra-{minor}"].result(timeout=2 * PIP_TIMEOUT)
    assert outcome.returncode == 0, (
        f"pip install -e '.[test]' does not resolve on Python {minor}:\n{outcome.output[-6000:]}"
    )
    prefect = outcome.installed.get("prefect", "")
    assert prefect.startswith(EMBEDDED_PREFECT[minor]), (minor, prefect)
    for tool in ("pytest", "responses", "mypy", "ruff"):
        assert tool in outcome.installed, (minor, tool)
