"""Throughput at scale: task-run lifecycles (create + Running + Completed) per second.

    python benchmarks/scale.py            # --quick for a shorter run

Topologies, all on 127.0.0.1 and started and stopped here: (a) one SQLite server,
(b) PostgreSQL with one API replica, (c) PostgreSQL with two replicas behind nginx. For
each, 1, 4, 16 and 32 threads share one client. Also Prefect's own SyncPrefectClient and a
raw requests floor (no models) on (b) and (c). Alongside each figure: client CPU per
operation, and how busy the machine's cores were (from /proc/stat), which shows what bounds
throughput. Writes benchmarks/results/scale.json.
"""

import argparse
import concurrent.futures
import datetime
import json
import os
import pathlib
import platform
import sys
import tempfile
import threading
import time
import uuid
from typing import Any, Callable, Dict, List, Tuple

import requests

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.prefect_server import PrefectServer, migrate_template  # noqa: E402
from support.topology import Topology  # noqa: E402

import orchestration_client  # noqa: E402
import orchestration_client.states as states  # noqa: E402
from orchestration_client.schemas import Task  # noqa: E402

Row = Dict[str, Any]


def busy_jiffies() -> Tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot, from /proc/stat."""
    fields = [int(v) for v in pathlib.Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


class Raw:
    """The floor: requests.Session and dicts, no models, no validation."""

    def __init__(self, api_url: str) -> None:
        self.api, self.session = api_url, requests.Session()

    def lifecycle(self, key: str) -> None:
        run_id = str(uuid.uuid4())
        for path, body in (
            ("/task_runs/", {"id": run_id, "task_key": "raw", "dynamic_key": key,
                             "state": {"type": "PENDING"}}),
            (f"/task_runs/{run_id}/set_state", {"state": {"type": "RUNNING"}}),
            (f"/task_runs/{run_id}/set_state", {"state": {"type": "COMPLETED"}}),
        ):
            for attempt in range(6):  # the floor retries 503s too, or it would not finish
                reply = self.session.post(self.api + path, json=body, timeout=60)
                if reply.status_code not in (502, 503, 504):
                    break
                time.sleep(2 ** attempt * 0.5)
            reply.raise_for_status()


def ours_lifecycle(client: Any, task: Any, constructors: Any) -> Callable[[str], None]:
    def lifecycle(key: str) -> None:
        run_id = uuid.uuid4()
        client.create_task_run(task, None, key, id=run_id)
        client.set_task_run_state(run_id, constructors.Running())
        client.set_task_run_state(run_id, constructors.Completed())

    return lifecycle


def prefect_lifecycle(api_url: str) -> Callable[[str], None]:
    import prefect.states
    from prefect import task
    from prefect.client.orchestration import SyncPrefectClient

    client = SyncPrefectClient(api_url)

    @task
    def bench() -> None: ...

    def lifecycle(key: str) -> None:
        run = client.create_task_run(bench, None, key, id=uuid.uuid4())
        client.set_task_run_state(run.id, prefect.states.Running())
        client.set_task_run_state(run.id, prefect.states.Completed())

    return lifecycle


def measure(lifecycle: Callable[[str], None], threads: int, count: int) -> Row:
    errors: List[str] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        try:
            lifecycle(f"{uuid.uuid4().hex}-{index}")
        except Exception as exc:  # counted and printed
            with lock:
                errors.append(type(exc).__name__)

    busy0, total0 = busy_jiffies()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    busy1, total1 = busy_jiffies()
    cores = os.cpu_count() or 1
    return {"per_s": count / wall, "client_cpu_ms_per_op": cpu / (3 * count) * 1000,
            "machine_busy": (busy1 - busy0) / max(1, total1 - total0) * cores,
            "client_cores": cpu / wall, "errors": len(errors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    thread_counts = (1, 4, 16) if args.quick else (1, 4, 16, 32)
    per_run = 32 if args.quick else 96

    root = pathlib.Path(tempfile.mkdtemp(prefix="scale-"))
    os.environ["PREFECT_HOME"] = str(root / "client-home")
    rows: Dict[str, Row] = {}
    started: List[Any] = []

    def run(label: str, lifecycle: Callable[[str], None], threads: int) -> None:
        count = max(per_run, threads * 4)
        lifecycle(f"warm-{uuid.uuid4().hex}")
        rows[label] = measure(lifecycle, threads, count)
        row = rows[label]
        print(f"  {label:40} {row['per_s']:6.1f}/s  client {row['client_cpu_ms_per_op']:5.2f} ms/op  "
              f"cores busy {row['machine_busy']:.2f} (client {row['client_cores']:.2f})  "
              f"errors {row['errors']}", flush=True)

    try:
        print("(a) one SQLite server", flush=True)
        sqlite = PrefectServer(root / "sqlite", migrate_template(root / "template")).start()
        started.append(sqlite)
        client = orchestration_client.SyncPrefectClient(sqlite.api_url)
        for threads in thread_counts:
            run(f"sqlite/ours/{threads}", ours_lifecycle(client, Task(name="a"), states), threads)
        sqlite.stop()

        print("(b) PostgreSQL, one replica  (c) two replicas behind nginx", flush=True)
        topology = Topology(root / "topology", replicas=2).start()
        started.append(topology)
        one_replica = topology.replicas[1].api_url
        for label, url in (("pg1", one_replica), ("pg2+nginx", topology.api_url)):
            client = orchestration_client.SyncPrefectClient(url)
            for threads in thread_counts:
                run(f"{label}/ours/{threads}", ours_lifecycle(client, Task(name=label), states), threads)
            for threads in (1, 16):
                run(f"{label}/raw requests/{threads}", Raw(url).lifecycle, threads)
        run("pg2+nginx/prefect/16", prefect_lifecycle(topology.api_url), 16)
    finally:
        for thing in started:
            thing.stop()

    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    data = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "rows": rows}
    (results / "scale.json").write_text(json.dumps(data, indent=1))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from compare import draw_charts

    draw_charts("scale_chart", data)
    print("\n| topology / client / threads | lifecycles/s | client CPU per op | cores busy (client) | errors |")
    print("|---|---:|---:|---:|---:|")
    for label, row in rows.items():
        print(f"| {label} | {row['per_s']:.1f} | {row['client_cpu_ms_per_op']:.2f} ms | "
              f"{row['machine_busy']:.2f} ({row['client_cores']:.2f}) | {row['errors']} |")


if __name__ == "__main__":
    main()
