"""Compatibility matrix: every member and every filter class of our client and of Prefect
3.9.1's own client, against a real server of every Prefect 3.x minor (its last patch on
PyPI), plus the last 2.x for information.

    python benchmarks/compat.py                  # the whole matrix
    python benchmarks/compat.py 3.0.11 3.4.25    # some servers only
    python benchmarks/compat.py --render         # the table of the last run again

Needs the test extra (Prefect 3.9.1 is the reference client). Each server runs from its own
cached virtualenv (``tests/support/compat/venvs.py``; built on first use), with a fresh SQLite
database, one at a time on 127.0.0.1, and is stopped before the next starts. A check that
needs a newer server counts as passed for a client only if that client says so clearly
(``FeatureNotSupported``). Prints a Markdown table and writes
``benchmarks/results/compat.json``.
"""

import argparse
import json
import logging
import pathlib
import re
import sys
import tempfile
import time
import warnings
from collections import Counter
from typing import Any, Dict, List

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' support code, as support.*
sys.path.insert(0, str(ROOT))

from support.compat.checks import ALL, World, evaluate, ours, prefects  # noqa: E402
from support.compat.servers import MATRIX, server  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def why(outcomes: Dict[str, str]) -> str:
    """The failures, grouped by cause: the field a 422 refused, or the error."""
    causes: Counter[str] = Counter()
    for outcome in outcomes.values():
        if not outcome.startswith("FAIL"):
            continue
        locs = re.findall(r"""['"]loc['"]: \[([^\]]*)\]""", outcome)
        if locs:
            parts = [p.strip(" '\"") for p in locs[0].split(",")[1:]]
            causes[f"`{'.'.join(p for p in parts if not p.isdigit())}`"] += 1
        elif "incompatible versions" in outcome:
            causes["the version check refuses a 2.x server"] += 1
        else:
            causes[outcome[6:90]] += 1
    return ", ".join(f"{cause} x{n}" if n > 1 else cause for cause, n in causes.most_common())


def clear(outcomes: Dict[str, str]) -> int:
    return sum(o.startswith("clear") for o in outcomes.values())


def run_server(version: str) -> Dict[str, Any]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"compat-{version}-") as home:
        process = server(version, pathlib.Path(home))
        process.start(timeout=180)
        startup = time.monotonic() - started
        try:
            row: Dict[str, Any] = {"server": version, "startup_s": round(startup, 1)}
            try:
                world = World(process.api_url, version)
            except Exception as exc:
                row["error"] = f"could not seed the world: {exc}"
                return row
            for side in (ours(), prefects()):
                with side.client(process.api_url) as client:
                    row[side.name] = {c.name: evaluate(c, client, side, world) for c in ALL}
            return row
        finally:
            process.stop()


def passed(outcomes: Dict[str, str]) -> int:
    return sum(not o.startswith("FAIL") for o in outcomes.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="*", default=MATRIX)
    parser.add_argument("--render", action="store_true",
                        help="only print the table of the last run's results")  # fmt: skip
    args = parser.parse_args()
    if args.render:
        print(render(json.loads((RESULTS / "compat.json").read_text())))
        return
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    rows: List[Dict[str, Any]] = []
    for version in args.versions:
        print(f"... Prefect {version}", file=sys.stderr, flush=True)
        try:
            rows.append(run_server(version))
        except Exception as exc:
            rows.append({"server": version, "error": " ".join(str(exc).split())[:300]})
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compat.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(render(rows))


def render(rows: List[Dict[str, Any]]) -> str:
    total = len(ALL)
    lines = ["| server | ours | Prefect 3.9.1's client | why (the field each 422 refused) |",
             "|---|---|---|---|"]  # fmt: skip
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['server']} | - | - | {row['error']} |")
            continue
        ours_, theirs = row["ours"], row["prefect"]
        if row["server"].startswith("2."):
            lines.append(
                f"| {row['server']} | {passed(ours_)}/{total} | {passed(theirs)}/{total} | both "
                "clients' version check refuses a 2.x server; the other failures are 422s on "
                "fields newer than 2.x |"
            )
            continue
        shown = f"{passed(ours_)}/{total}"
        if clear(ours_):
            shown += f" ({clear(ours_)} of them a clear `FeatureNotSupported`)"
        reasons = [f"ours: {why(ours_)}" if why(ours_) else "",
                   f"Prefect's: {why(theirs)}" if why(theirs) else ""]  # fmt: skip
        lines.append(f"| {row['server']} | {shown} | {passed(theirs)}/{total} | "
                     f"{'; '.join(r for r in reasons if r)} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
