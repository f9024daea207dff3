"""Every fenced ``python`` block in README.md, docs/*.md and benchmarks/README.md runs as written against
the real test server (PREFECT_API_URL points at it), each in a fresh interpreter from an empty
folder. A block that deliberately cannot run (it needs Prefect Cloud, say) is preceded by an
HTML comment ``<!-- not-run: why -->``; there may be only a few."""

import os
import pathlib
import re
import subprocess
import sys
from typing import List, NamedTuple

import pytest

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).parents[2]
DOCUMENTS = ["README.md", "benchmarks/README.md",
             *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]
#: A newcomer reads the README in five minutes; the reference lives in docs/.
README_LIMIT = 10 * 1024
MAX_NOT_RUN = 3
_BLOCK = re.compile(r"(?:<!--\s*not-run:\s*(?P<why>[^>]*?)\s*-->\s*\n)?```python\n(?P<code>.*?)```",
                    re.S)


class Snippet(NamedTuple):
    document: str
    line: int
    code: str
    not_run: str

    def __str__(self) -> str:
        return f"{self.document}:{self.line}"


def snippets() -> List[Snippet]:
    found = []
    for document in DOCUMENTS:
        text = (ROOT / document).read_text()
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code"))
            found.append(Snippet(document, line, match["code"], match["why"] or ""))
    return found


def test_readme_is_short_and_its_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) < README_LIMIT, f"README.md is {len(readme.encode())} bytes"
    for document in ["README.md", *DOCUMENTS]:
        text = (ROOT / document).read_text()
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (ROOT / document).parent.joinpath(target).resolve().exists(), (document, target)


def test_snippets_are_found_and_few_are_not_run() -> None:
    everything = snippets()
    assert [s for s in everything if s.document == "README.md" and not s.not_run]
    skipped = [s for s in everything if s.not_run]
    assert len(skipped) <= MAX_NOT_RUN, [str(s) for s in skipped]
    for document in DOCUMENTS:
        fences = (ROOT / document).read_text().count("```python")
        assert fences == len([s for s in everything if s.document == document]), document


@pytest.mark.parametrize("snippet", [s for s in snippets() if not s.not_run], ids=str)
def test_snippet_runs(snippet: Snippet, api_url: str, tmp_path: pathlib.Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    result = subprocess.run(
        [sys.executable, "-c", snippet.code], cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
        env={**clean, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "PREFECT_API_URL": api_url},
    )
    assert result.returncode == 0, f"{snippet} failed:\n{snippet.code}\n{result.stderr[-3000:]}"
