"""The benchmark charts: drawn from the committed results, and the committed SVGs show the
figures that are in the committed JSON (so a rerun that forgot to redraw them fails here)."""

import importlib.util
import json
import pathlib
import xml.etree.ElementTree as ElementTree
from typing import Any, Dict

import pytest

ROOT = pathlib.Path(__file__).parents[2]
RESULTS = ROOT / "benchmarks" / "results"
# Loaded from its file: benchmarks/ is not a package, and its scripts are not put on
# sys.path (their names, such as compat.py, are too generic to share it).
_spec = importlib.util.spec_from_file_location("benchmark_charts", ROOT / "benchmarks" / "charts.py")
assert _spec and _spec.loader
charts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(charts)


def load(name: str) -> Dict[str, Any]:
    data: Dict[str, Any] = json.loads((RESULTS / name).read_text())
    return data


def expected_labels() -> Dict[str, list]:
    compare = load("compare.json")
    imports = compare["imports"]
    return {
        "compare_footprint.svg": [f"{imports[s]['import_ms']:.3g} ms" for s in charts.SIDES]
        + [f"{compare['footprint'][s]['mb']:.3g} MB" for s in charts.SIDES],
        "compare_calls.svg": [f"{compare['calls'][m]['ours']['cpu_us']:,.0f} µs"
                              for m in ("create_task_run", "read_task_run", "read_task_runs")],
        "scale_throughput.svg": ["Throughput by topology", "pg2+nginx / prefect"],
        "local_server.svg": [f"{load('local_server.json')['summary'][side]['later']['answered_s']:.3g} s"
                             for side in ("ours", "prefect", "per_process")],
    }


@pytest.mark.parametrize("name", sorted(expected_labels()))
def test_committed_chart_shows_the_committed_figures(name: str) -> None:
    svg = (RESULTS / name).read_text()
    ElementTree.fromstring(svg)  # well-formed
    for label in expected_labels()[name]:
        assert label in svg, f"{name} does not show {label!r}: run python benchmarks/charts.py"
    assert f"results/{name}" in (ROOT / "benchmarks" / "README.md").read_text()


def test_charts_redraw_identically(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(charts, "RESULTS", tmp_path)
    draw = {"compare": lambda: charts.compare_charts(load("compare.json")),
            "scale": lambda: charts.scale_chart(load("scale.json")),
            "local_server": lambda: charts.local_server_chart(load("local_server.json"))}
    written = [path for kind in draw.values() for path in kind()]
    assert sorted(p.name for p in written) == sorted(expected_labels())
    for path in written:
        ElementTree.fromstring(path.read_text())
        again = path.read_bytes()
        draw[next(kind for kind in draw if path.name.startswith(kind))]()
        assert path.read_bytes() == again, "charts must be reproducible (no dates, no random ids)"
