"""With no PREFECT_API_URL: how long a whole script takes to get its first call answered,
with Prefect's own temporary server and with our shared local server.

    python benchmarks/local_server.py             # 3 first processes, 5 later ones
    python benchmarks/local_server.py --quick     # 1 and 3, for a smoke run

Every measurement is one new interpreter (``subprocess``), timed on the wall clock from
spawning it until it prints that its first call (``hello()``) was answered; the time until
it has exited is kept too (Prefect's temporary server, and ours with a timeout of 0, stop
their server on the way out). Three situations, each in its own temporary PREFECT_HOME:

* first process, fresh home: no database yet (the server creates and migrates it);
* first process, warm home: the database exists, no server is running;
* later processes: right after another script. Prefect starts a server per process, so
  this is a warm start again; ours finds the shared server running (median of 5).

Prefect: ``prefect.get_client(sync_client=True)`` with ``PREFECT_SERVER_ALLOW_EPHEMERAL_MODE
=true``, Prefect's ephemeral mode. Ours: ``get_client()`` (the shared server), and with
``ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT=0`` (one server per process, the old
behaviour) for reference. Every server started here is stopped before the script ends.
Writes benchmarks/results/local_server.json and redraws results/local_server.svg.
"""

import argparse
import contextlib
import datetime
import json
import os
import pathlib
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

PREFECT = """
from prefect import get_client
with get_client(sync_client=True) as client:
    client.hello()
    print("answered", flush=True)
"""
OURS = """
from orchestration_client import get_client
with get_client() as client:
    client.hello()
    print("answered", flush=True)
"""
GOAL_SECONDS, GOAL_RATIO = 1.0, 0.1


def environment(home: pathlib.Path, **extra: str) -> Dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("PREFECT_", "ORCHESTRATION_CLIENT_"))}  # fmt: skip
    return {**clean, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            **extra}  # fmt: skip


def one_process(code: str, env: Dict[str, str], log: pathlib.Path) -> Dict[str, float]:
    """Seconds from spawn to the first answered call, and to exit, of one interpreter."""
    with open(log, "ab") as stderr:
        began = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                                   stderr=stderr, start_new_session=True)  # fmt: skip
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            answered = time.perf_counter() - began
            process.wait(timeout=300)
            exited = time.perf_counter() - began
        finally:
            with_group(process.pid, signal.SIGKILL)  # whatever it left in its group
            if process.poll() is None:
                process.kill()
                process.wait()
    if line.strip() != b"answered" or process.returncode != 0:
        raise SystemExit(f"a measured process failed; its output is in {log}")
    return {"answered_s": round(answered, 4), "exited_s": round(exited, 4)}


def with_group(pgid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, number)


def stop_leftovers(root: pathlib.Path) -> int:
    """Kill any process still using a PREFECT_HOME under ``root`` (there should be none);
    returns how many there were."""
    found = []
    for entry in pathlib.Path("/proc").glob("[0-9]*"):
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(b"PREFECT_HOME=" + str(root).encode()) for v in environ):
            found.append(int(entry.name))
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(found)


def stop_ours(home: pathlib.Path) -> None:
    """Stop our shared server of ``home`` (run as a user would)."""
    subprocess.run([sys.executable, "-m", "orchestration_client", "server", "stop"],
                   env=environment(home), check=True, capture_output=True, timeout=120)  # fmt: skip


def measure(root: pathlib.Path, firsts: int, laters: int) -> Dict[str, Any]:
    runs: Dict[str, Dict[str, List[Dict[str, float]]]] = {
        side: {"fresh": [], "warm": [], "later": []} for side in ("prefect", "ours", "per_process")
    }
    log = root / "processes.log"
    own_server = {  # a server per process: Prefect's temporary one, and ours with timeout 0
        "prefect": (PREFECT, {"PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true"}),
        "per_process": (OURS, {"ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT": "0"}),
    }
    for index in range(firsts):
        print(f"first processes, round {index + 1} of {firsts} ...", flush=True)
        for side, (code, extra) in own_server.items():
            env = environment(root / f"{side}-{index}", **extra)
            runs[side]["fresh"].append(one_process(code, env, log))
            runs[side]["warm"].append(one_process(code, env, log))
        home = root / f"ours-{index}"
        try:
            runs["ours"]["fresh"].append(one_process(OURS, environment(home), log))
            stop_ours(home)
            runs["ours"]["warm"].append(one_process(OURS, environment(home), log))
        finally:
            stop_ours(home)
    print(f"later processes, {laters} of each ...", flush=True)
    for side, (code, extra) in own_server.items():
        env = environment(root / f"{side}-later", **extra)
        one_process(code, env, log)  # the script before: creates the database
        runs[side]["later"] = [one_process(code, env, log) for _ in range(laters)]
    home = root / "ours-later"
    try:
        one_process(OURS, environment(home), log)  # the script before: starts the server
        runs["ours"]["later"] = [one_process(OURS, environment(home), log) for _ in range(laters)]
    finally:
        stop_ours(home)
    return runs


def summarise(runs: Dict[str, Dict[str, List[Dict[str, float]]]]) -> Dict[str, Any]:
    summary: Dict[str, Any] = {}
    for side, situations in runs.items():
        for situation, values in situations.items():
            if values:
                summary.setdefault(side, {})[situation] = {
                    key: round(statistics.median(v[key] for v in values), 3)
                    for key in ("answered_s", "exited_s")
                }
    for situation in ("fresh", "warm", "later"):
        ours, theirs = summary["ours"][situation], summary["prefect"][situation]
        summary.setdefault("ratio", {})[situation] = round(
            ours["answered_s"] / theirs["answered_s"], 4)
    later = summary["ours"]["later"]["answered_s"]
    summary["goal_met"] = later <= GOAL_SECONDS and summary["ratio"]["later"] <= GOAL_RATIO
    return summary


def report(data: Dict[str, Any]) -> None:
    summary, counts = data["summary"], data["counts"]
    print(f"\n{data['machine']}; Python {data['versions']['python']}, Prefect "
          f"{data['versions']['prefect']}; wall clock from spawn to the first answered call "
          "(to exit in brackets), medians\n")  # fmt: skip
    names = {"fresh": f"first process, fresh PREFECT_HOME (median of {counts['first']})",
             "warm": f"first process, warm PREFECT_HOME (median of {counts['first']})",
             "later": f"later processes (median of {counts['later']})"}  # fmt: skip

    def cell(side: str, situation: str) -> str:
        row = summary.get(side, {}).get(situation)
        return f"{row['answered_s']:.2f} s ({row['exited_s']:.2f} s)" if row else "-"

    print(f"{'':50} {'Prefect temporary':>20} {'ours (shared)':>20} {'ours/Prefect':>13} "
          f"{'ours, timeout 0':>20}")  # fmt: skip
    for situation, name in names.items():
        print(f"{name:50} {cell('prefect', situation):>20} {cell('ours', situation):>20} "
              f"{summary['ratio'][situation]:>13.3f} {cell('per_process', situation):>20}")  # fmt: skip
    later = summary["ours"]["later"]["answered_s"]
    print(f"\ngoal (later processes <= {GOAL_SECONDS:g} s and <= {GOAL_RATIO:g}x Prefect's): "
          f"{'met' if summary['goal_met'] else 'NOT met'} ({later:.2f} s, "
          f"{summary['ratio']['later']:.3f}x)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 first and 3 later processes")
    args = parser.parse_args()
    firsts, laters = (1, 3) if args.quick else (3, 5)

    import prefect

    import orchestration_client

    root = pathlib.Path(tempfile.mkdtemp(prefix="bench-local-server-"))
    try:
        data: Dict[str, Any] = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "versions": {"python": platform.python_version(), "prefect": prefect.__version__,
                         "orchestration_client": orchestration_client.__version__},
            "counts": {"first": firsts, "later": laters},
        }  # fmt: skip
        data["runs"] = measure(root, firsts, laters)
        data["summary"] = summarise(data["runs"])
    finally:
        for home in sorted(root.glob("*")):
            if (home / "orchestration_client").is_dir():
                stop_ours(home)
        left = stop_leftovers(root)
        shutil.rmtree(root, ignore_errors=True)
    data["leftover_processes"] = left  # every server started here was stopped: 0
    if left:
        print(f"warning: {left} processes of this benchmark outlived it and were killed")
    report(data)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "local_server.json").write_text(json.dumps(data, indent=1) + "\n")
    print(f"\nwritten: {RESULTS / 'local_server.json'}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("chart not redrawn: pip install -e '.[bench]' for matplotlib")
        return
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import charts

    for path in charts.local_server_chart(data):
        print(f"written: {path}")


if __name__ == "__main__":
    main()
