"""Defects found by adversarial reviews (a hostile network and prefork servers; code migrated
from Prefect), each kept as the standalone script that reproduced it: it exits 0 once the
defect is fixed. They run in fresh interpreters because several fork, chdir or read the
environment at import. The ``repro_*`` scripts compare with Prefect 3.9.1 and need it
installed (the main run has it; the interpreter-matrix virtualenvs deliberately do not)."""

import os
import pathlib
import subprocess
import sys

import pytest
from support.helpers import installed_prefect, prefect_is_older

ROOT = pathlib.Path(__file__).parents[2]
SCRIPTS = ROOT / "tests" / "regressions"
#: Probabilistic (a fork racing a cookie-jar lock): run, but bounded by its own time limit.
SLOW = {"fork_cookie_lock_hang.py": 240}


@pytest.mark.parametrize(
    "script", sorted(p.name for p in SCRIPTS.glob("*.py") if p.name != "stub.py")
)
def test_defect_stays_fixed(script: str, tmp_path: pathlib.Path) -> None:
    if script.startswith("repro_"):  # these compare with Prefect's own client
        pytest.importorskip("prefect", reason="compares with Prefect (not in the matrix venvs)")
        if prefect_is_older():
            pytest.skip(f"compares with Prefect 3.9.1; Prefect {installed_prefect()} is installed "
                        "(the extras' choice on Python 3.9 and 3.10)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PYTHONPATH=str(ROOT), HOME=str(tmp_path), PREFECT_HOME=str(tmp_path / "prefect"))
    result = subprocess.run([sys.executable, str(SCRIPTS / script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=SLOW.get(script, 120))
    assert result.returncode == 0, f"{script}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
