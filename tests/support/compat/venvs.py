"""Virtualenvs cached outside the repository, keyed by what went into them.

A venv counts as built only once its ``.complete`` marker exists (written after ``pip
install`` succeeded), so a half-built one is rebuilt, never used; a file lock lets the test
suite and ``benchmarks/compat.py`` share the cache. The cache is an optimisation
only: delete it (``~/.cache/orchestration_client``) and everything is rebuilt.
"""

import fcntl
import glob
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
from typing import List, Optional, Sequence

CACHE = pathlib.Path(
    os.environ.get("ORCHESTRATION_CLIENT_CACHE")
    or pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache")
    / "orchestration_client"
)
PYENV = pathlib.Path(os.environ.get("PYENV_ROOT") or pathlib.Path.home() / ".pyenv")
PIP_TIMEOUT = 1200


class VenvBuildError(RuntimeError):
    """``pip install`` failed; the message carries pip's own error output."""


def find_python(minor: str) -> Optional[str]:
    """The newest ``python3.N`` for ``minor`` ("3.9"): pyenv's first, then PATH."""
    found = sorted(
        glob.glob(str(PYENV / "versions" / f"{minor}.*" / "bin" / f"python{minor}")),
        key=lambda p: [int(x) for x in pathlib.Path(p).parents[1].name.split(".")],
    )
    if found:
        return found[-1]
    return shutil.which(f"python{minor}")


def interpreter_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return out.stdout.strip()


def cached_venv(kind: str, name: str, python: str, requirements: Sequence[str]) -> pathlib.Path:
    """A venv made by ``python`` with ``requirements`` installed, from the cache if an
    identical one was built before. Raises ``VenvBuildError`` with pip's output."""
    version = interpreter_version(python)
    key = hashlib.sha256(json.dumps([version, sorted(requirements)]).encode()).hexdigest()[:10]
    root = CACHE / kind
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{name}-py{version}-{key}"
    if (final / ".complete").exists():
        return final
    with open(root / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / ".complete").exists():
            return final
        shutil.rmtree(final, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(final)], check=True, timeout=300)
        pip = [str(final / "bin" / "python"), "-m", "pip", "install", "-q",
               "--disable-pip-version-check", *requirements]  # fmt: skip
        result = subprocess.run(pip, capture_output=True, text=True, timeout=PIP_TIMEOUT)
        if result.returncode != 0:
            shutil.rmtree(final, ignore_errors=True)
            raise VenvBuildError(
                f"pip install {' '.join(requirements)} failed with {python} ({version}):\n"
                f"{result.stderr[-4000:]}{result.stdout[-2000:]}"
            )
        (final / ".complete").write_text(json.dumps(list(requirements)) + "\n")
    return final


def pip_freeze(venv: pathlib.Path) -> List[str]:
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout.split()
