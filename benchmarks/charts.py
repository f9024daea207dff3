"""SVG charts of the benchmark results, drawn from the JSON the benchmarks write.

    python benchmarks/charts.py          # redraw every chart from benchmarks/results/*.json

``compare.py`` and ``scale.py`` call this at the end of a run, so each chart always shows
the figures in the JSON next to it. Plotting needs matplotlib, a benchmark-only dependency
(``pip install -e '.[bench]'``); the package itself never imports it. The SVGs are written
without timestamps or random ids, so an unchanged result gives an unchanged file.
"""

import json
import pathlib
from typing import Any, Dict, List, Sequence

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

SIDES = ("ours", "prefect", "floor")
LABELS = {
    "ours": "orchestration_client",
    "prefect": "Prefect 3.9.1 client",
    "floor": "floor (requests + msgspec)",
}
COLOURS = {"ours": "#2a7ab9", "prefect": "#e07b39", "floor": "#9a9a9a", "raw requests": "#9a9a9a",
           "per_process": "#9fc5e8"}


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise SystemExit(
            "charts need matplotlib, a benchmark-only dependency: pip install -e '.[bench]'"
        ) from None
    matplotlib.use("svg")
    matplotlib.rcParams.update(
        {"svg.hashsalt": "orchestration_client", "svg.fonttype": "none", "font.size": 9}
    )
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, name: str, layout: bool = True) -> pathlib.Path:
    path = RESULTS / name
    if layout:
        figure.tight_layout()
    figure.savefig(path, format="svg", metadata={"Date": None})
    _pyplot().close(figure)
    return path


def _bars(axis: Any, groups: Sequence[str], values: Dict[str, List[float]], unit: str,
          labels: Dict[str, str] = LABELS) -> None:  # fmt: skip
    """Grouped horizontal bars: one group per label, one bar per side, value printed."""
    sides = [side for side in (*SIDES, *values) if side in values]
    sides = list(dict.fromkeys(sides))
    height = 0.8 / len(sides)
    for index, side in enumerate(sides):
        positions = [g + index * height for g in range(len(groups))]
        bars = axis.barh(positions, values[side], height, label=labels[side], color=COLOURS[side])
        shown = [f"{v:,.0f} {unit}" if v >= 100 else f"{v:.3g} {unit}" for v in values[side]]
        axis.bar_label(bars, shown, padding=2, fontsize=7)
    axis.set_yticks([g + height * (len(sides) - 1) / 2 for g in range(len(groups))], groups)
    axis.invert_yaxis()
    axis.margins(x=0.25)
    axis.spines[["top", "right"]].set_visible(False)


def compare_charts(data: Dict[str, Any]) -> List[pathlib.Path]:
    """Import time and RSS, install size, and client CPU per call: ours vs Prefect vs floor."""
    plt = _pyplot()
    written = []
    imports = data["imports"]
    footprint = data["footprint"]
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(10, 2.6))
    _bars(left, ["cold import"], {s: [imports[s]["import_ms"]] for s in SIDES}, "ms")
    left.set_title("import time (lower is better)")
    _bars(middle, ["RSS after import"], {s: [imports[s]["rss_mb"]] for s in SIDES}, "MB")
    middle.set_title("memory")
    installed = [s for s in SIDES if s in footprint]
    _bars(right, ["installed"], {s: [footprint[s]["mb"]] for s in installed}, "MB")
    right.set_title("install size (site-packages)")
    handles, labels = left.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    figure.suptitle(f"{data['machine']}, Python {data['versions']['python']}, {data['date'][:10]}",
                    fontsize=8)
    figure.tight_layout(rect=(0, 0.1, 1, 1))
    written.append(_save(figure, "compare_footprint.svg", layout=False))

    members = [m for m, row in data["calls"].items() if row["ours"]["cpu_us"] >= 1]
    figure, axis = plt.subplots(figsize=(8, 0.5 + 0.55 * len(members)))
    _bars(axis, members, {s: [data["calls"][m][s]["cpu_us"] for m in members] for s in SIDES}, "µs")
    axis.set_xlabel("client CPU per call, µs (median; lower is better)")
    axis.legend(loc="upper center", bbox_to_anchor=(0.45, -0.08 - 1.2 / len(members) / 4),
                ncol=3, fontsize=7, frameon=False)
    written.append(_save(figure, "compare_calls.svg"))
    return written


def scale_chart(data: Dict[str, Any]) -> List[pathlib.Path]:
    """Lifecycles per second by thread count, one line per topology and client."""
    plt = _pyplot()
    series: Dict[str, Dict[int, float]] = {}
    for label, row in data["rows"].items():
        topology, client, threads = label.rsplit("/", 2)
        series.setdefault(f"{topology} / {client}", {})[int(threads)] = row["per_s"]
    figure, axis = plt.subplots(figsize=(7, 3.6))
    styles = {"sqlite": ":", "pg1": "--", "pg2+nginx": "-"}
    for name, points in series.items():
        topology, client = name.split(" / ")
        threads = sorted(points)
        axis.plot(threads, [points[t] for t in threads], styles.get(topology, "-"), marker="o",
                  color=COLOURS.get(client, "#2a7ab9"), label=name)
    axis.set_xscale("log", base=2)
    axis.set_xticks([1, 4, 16, 32], ["1", "4", "16", "32"])
    axis.set_xlabel("threads sharing one client")
    axis.set_ylabel("task-run lifecycles / s")
    axis.set_title(f"Throughput by topology ({data['machine']}, {data['date'][:10]})", fontsize=9)
    axis.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1, 0.5))
    axis.spines[["top", "right"]].set_visible(False)
    return [_save(figure, "scale_throughput.svg")]


def local_server_chart(data: Dict[str, Any]) -> List[pathlib.Path]:
    """Seconds from a script's start to its first answered call with no PREFECT_API_URL:
    Prefect's temporary server, our shared server, and ours with one server per process."""
    plt = _pyplot()
    summary = data["summary"]
    situations = {"fresh": "first process,\nfresh PREFECT_HOME",
                  "warm": "first process,\nwarm PREFECT_HOME", "later": "later processes"}
    labels = {"prefect": f"Prefect {data['versions']['prefect']}'s temporary server",
              "ours": "orchestration_client, shared server (default)",
              "per_process": "orchestration_client, a server per process (timeout 0)"}
    values = {side: [summary[side][s]["answered_s"] for s in situations] for side in labels}
    figure, axis = plt.subplots(figsize=(8, 3.4))
    _bars(axis, list(situations.values()), values, "s", labels)
    axis.set_xlabel("seconds from process start to first call answered (median; lower is better)")
    axis.set_title(f"No PREFECT_API_URL: whole-process time ({data['machine']}, "
                   f"Python {data['versions']['python']}, {data['date'][:10]})", fontsize=9)
    axis.legend(loc="lower right", fontsize=7, frameon=False)
    return [_save(figure, "local_server.svg")]


def main() -> None:
    written = []
    if (RESULTS / "compare.json").exists():
        written += compare_charts(json.loads((RESULTS / "compare.json").read_text()))
    if (RESULTS / "scale.json").exists():
        written += scale_chart(json.loads((RESULTS / "scale.json").read_text()))
    if (RESULTS / "local_server.json").exists():
        written += local_server_chart(json.loads((RESULTS / "local_server.json").read_text()))
    for path in written:
        print(f"written: {path}")


if __name__ == "__main__":
    main()
