"""Defects found by adversarial reviews (a hostile network and prefork servers; code migrated
from Prefect), each kept as the standalone script that reproduced it: it exits 0 once the
defect is fixed. They run in fresh interpreters because several fork, chdir or read the
environment at import. The ``repro_*`` scripts compare with Prefect 3.9.1 and need it
installed (the main run has it; the interpreter-matrix virtualenvs deliberately do not)."""

import concurrent.futures
import importlib.util
import os
import pathlib
import subprocess
import sys
from typing import Dict, Iterator, Optional

import pytest
from support.helpers import installed_prefect, prefect_is_older

ROOT = pathlib.Path(__file__).parents[2]
SCRIPTS = ROOT / "tests" / "regressions"
#: Probabilistic (a fork racing a cookie-jar lock): run, but bounded by its own time limit.
SLOW = {"fork_cookie_lock_hang.py": 240}


SCRIPT_NAMES = sorted(p.name for p in SCRIPTS.glob("*.py") if p.name != "stub.py")
#: Most scripts spend their time waiting (back-offs, timeouts, a server's reply), so three
#: run at once: the inner loop is a minute shorter, and the CPU is no busier.
AT_ONCE = 3


def needs_prefect_skip(script: str) -> Optional[str]:
    """Why ``script`` cannot run here (it compares with Prefect 3.9.1), or None."""
    if not script.startswith("repro_"):
        return None
    if importlib.util.find_spec("prefect") is None:
        return "compares with Prefect (not in the matrix venvs)"
    if prefect_is_older():
        return (f"compares with Prefect 3.9.1; Prefect {installed_prefect()} is installed "
                "(the extras' choice on Python 3.9 and 3.10)")  # fmt: skip
    return None


def run_script(script: str, home: pathlib.Path) -> "subprocess.CompletedProcess[str]":
    home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PYTHONPATH=str(ROOT), HOME=str(home), PREFECT_HOME=str(home / "prefect"))
    return subprocess.run([sys.executable, str(SCRIPTS / script)], cwd=home, env=env,
                          capture_output=True, text=True, timeout=SLOW.get(script, 120))  # fmt: skip


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dict[str, "concurrent.futures.Future[subprocess.CompletedProcess[str]]"]]:
    """The selected runnable scripts, started when the first test needs them, ``AT_ONCE``
    at a time."""
    selected = [
        str(item.callspec.params["script"])
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.function is test_defect_stays_fixed
    ]
    homes = tmp_path_factory.mktemp("regressions")
    with concurrent.futures.ThreadPoolExecutor(max_workers=AT_ONCE) as pool:
        futures = {
            script: pool.submit(run_script, script, homes / script.replace(".", "_"))
            for script in selected
            if needs_prefect_skip(script) is None
        }
        yield futures
        for future in futures.values():
            future.cancel()  # after a failure with -x, those not started yet


@pytest.mark.parametrize("script", SCRIPT_NAMES)
def test_defect_stays_fixed(
    script: str,
    outcomes: Dict[str, "concurrent.futures.Future[subprocess.CompletedProcess[str]]"],
) -> None:
    reason = needs_prefect_skip(script)
    if reason is not None:
        pytest.skip(reason)
    result = outcomes[script].result()
    assert result.returncode == 0, f"{script}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
