"""The package as it is published: sdist and wheel build, pass ``twine check --strict``, carry
the license and metadata, and work where they land.

* The sdist is complete enough for a distribution to run the tests from it: it is unpacked
  in a temporary folder and its unit tests run there.
* The wheel, installed alone into a fresh virtualenv with only its runtime dependencies (as
  a slim container would), runs a smoke script from outside the source tree against the
  real test server.
"""

import configparser
import os
import pathlib
import re
import subprocess
import sys
import tarfile
import zipfile
from typing import Dict, List, Optional

import pytest

ROOT = pathlib.Path(__file__).parents[2]
SMOKE = ROOT / "tests" / "support" / "wheel_smoke.py"
#: Every interpreter the test matrix runs; the classifiers must name the same ones.
TESTED_PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]


def run(
    args: List[str], cwd: Optional[pathlib.Path] = None, env: Optional[Dict[str, str]] = None
) -> "subprocess.CompletedProcess[str]":
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, pathlib.Path]:
    """Build the sdist and the wheel once, from a copy-free ``python -m build``."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)])
    sdist = next(out.glob("*.tar.gz"))
    wheel = next(out.glob("*.whl"))
    return {"sdist": sdist, "wheel": wheel}


def test_twine_check_strict(dists: Dict[str, pathlib.Path]) -> None:
    result = run([sys.executable, "-m", "twine", "check", "--strict",
                  str(dists["sdist"]), str(dists["wheel"])])
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_wheel_carries_every_module_the_license_and_py_typed(dists: Dict[str, pathlib.Path]) -> None:
    names = zipfile.ZipFile(dists["wheel"]).namelist()
    package = ROOT / "orchestration_client"
    source = {f"orchestration_client/{p.relative_to(package).as_posix()}" for p in package.rglob("*")
              if (p.suffix == ".py" or p.name == "py.typed") and "__pycache__" not in p.parts}
    assert source <= set(names), sorted(source - set(names))
    assert any(re.fullmatch(r"orchestration_client-[^/]+\.dist-info/licenses/LICENSE", n)
               for n in names), names
    assert not [n for n in names if n.startswith(("tests/", "examples/", "benchmarks/"))]


def test_metadata_license_classifiers_and_keywords(dists: Dict[str, pathlib.Path]) -> None:
    wheel = zipfile.ZipFile(dists["wheel"])
    metadata = wheel.read(next(n for n in wheel.namelist() if n.endswith("METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "License-File: LICENSE" in metadata
    assert "License :: " not in metadata, "PEP 639: an SPDX expression replaces license classifiers"
    classifiers = set(re.findall(r"^Classifier: (.+)$", metadata, re.M))
    for version in TESTED_PYTHONS:
        assert f"Programming Language :: Python :: {version}" in classifiers
    listed = {c.rsplit(" :: ", 1)[1] for c in classifiers
              if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    assert listed == set(TESTED_PYTHONS), "classify exactly the interpreters the matrix tests"
    for needed in ("Typing :: Typed", "Intended Audience :: Developers"):
        assert needed in classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert any(c.startswith("Topic :: ") for c in classifiers)
    assert re.search(r"^Keywords: .*prefect", metadata, re.M)
    requires = re.findall(r"^Requires-Dist: ([A-Za-z0-9_.-]+)([^;\n]*)(;.*)?$", metadata, re.M)
    runtime = {name.lower() for name, _, marker in requires if "extra ==" not in (marker or "")}
    assert runtime <= {"requests", "urllib3", "msgspec", "tomli"}, runtime


def test_license_file_is_apache_2() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert config["metadata"]["license_expression"] == "Apache-2.0"


def test_changelog_follows_keep_a_changelog() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "keepachangelog.com" in text and "semver.org" in text
    assert re.search(r"^## \[Unreleased\]$", text, re.M)
    version = re.search(r'__version__ = "([^"]+)"',
                        (ROOT / "orchestration_client" / "_version.py").read_text())
    assert version and re.search(rf"^## \[{re.escape(version.group(1))}\] - \d{{4}}-\d\d-\d\d$",
                                 text, re.M)
    sections = set(re.findall(r"^### (\w+)$", text, re.M))
    assert sections and sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def test_sdist_is_complete_and_its_tests_run_from_it(
    dists: Dict[str, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    """Everything a distribution builder needs to test the package is in the sdist, byte for
    byte the tree this run tests, and pytest finds the same tests there. (Running the unit
    tests from it again, as this test once did, cost four minutes of CI for what the
    identical bytes already prove.)"""
    with tarfile.open(dists["sdist"]) as archive:  # our own, freshly built archive
        if sys.version_info >= (3, 12):
            archive.extractall(tmp_path, filter="data")
        else:
            archive.extractall(tmp_path)
    top = next(tmp_path.iterdir())
    tracked = run(["git", "ls-files", "orchestration_client", "tests", "examples", "benchmarks",
                   "docs"], cwd=ROOT).stdout.split()  # fmt: skip
    missing = [path for path in tracked if not (top / path).exists()]
    assert not missing, f"tracked files missing from the sdist: {missing}"
    differ = [path for path in tracked if (top / path).read_bytes() != (ROOT / path).read_bytes()]
    assert not differ, f"sdist files that differ from the tested tree: {differ}"
    for name in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml"):
        assert (top / name).read_bytes() == (ROOT / name).read_bytes(), name
    assert (top / "setup.cfg").exists()  # setuptools appends its [egg_info] section

    def collected(cwd: pathlib.Path) -> List[str]:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
            cwd=cwd, env=_clean_env(PYTHONPATH=str(cwd)), capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        return [line for line in result.stdout.splitlines() if "::" in line]

    from_sdist = collected(top)
    assert len(from_sdist) > 1000 and from_sdist == collected(ROOT)


@pytest.mark.integration
def test_wheel_alone_in_a_fresh_virtualenv(
    dists: Dict[str, pathlib.Path], tmp_path: pathlib.Path, api_url: str
) -> None:
    """No pip, no setuptools, no test extra: the venv gets exactly the wheel and what it
    requires, installed by the outer pip, and the smoke script runs from an empty folder."""
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    # From an empty folder and a clean environment: a source tree on sys.path (its
    # egg-info) would make pip think the package is already installed.
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
         "--no-cache-dir", str(dists["wheel"])], cwd=tmp_path, env=_clean_env())
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    script = workdir / "wheel_smoke.py"
    script.write_text(SMOKE.read_text())
    result = run([str(python), str(script)], cwd=workdir,
                 env=_clean_env(PREFECT_API_URL=api_url, HOME=str(tmp_path)))
    assert result.stdout.strip().splitlines()[-1] == "smoke ok", result.stdout


def _clean_env(**extra: str) -> Dict[str, str]:
    """A minimal environment: no PYTHONPATH into the source tree, no PREFECT_* settings."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PREFECT_", "PYTHON")) and key != "VIRTUAL_ENV"}
    env.update(extra)
    return env
