"""Side-by-side benchmark: orchestration_client vs Prefect's own SyncPrefectClient, with raw
``requests.Session`` + ``msgspec.json.decode`` (no models) as the floor.

    python benchmarks/compare.py                 # everything except re-measuring footprint
    python benchmarks/compare.py --footprint     # also rebuild two venvs to measure installs
    python benchmarks/compare.py --quick         # fewer repetitions, for a smoke run

Needs the test extra (prefect is the reference). Starts one Prefect server on 127.0.0.1 and
stops it at the end. Prints a table of medians and ratios and writes it as JSON to
benchmarks/results/compare.json.
"""

import argparse
import concurrent.futures
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any, Callable, Dict, List, Tuple

import msgspec
import requests

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests"))

from support.prefect_server import PrefectServer, migrate_template  # noqa: E402

Row = Dict[str, Any]

# ---- 1. cold import time and RSS --------------------------------------------------------------

IMPORTS = {
    "ours": "import orchestration_client",
    "prefect": "import prefect.client.orchestration",
    "floor": "import requests, msgspec",
}
_IMPORT_PROBE = """
import resource, sys, time
start = time.perf_counter()
{statement}
elapsed = time.perf_counter() - start
forbidden = sorted(m for m in ("asyncio", "pydantic", "httpx", "anyio", "prefect") if m in sys.modules)
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, ",".join(forbidden))
"""


def measure_imports(runs: int) -> Dict[str, Row]:
    """Median import time and peak RSS in fresh interpreters, each side with a warm
    bytecode cache (this machine sets PYTHONDONTWRITEBYTECODE, so give both a cache)."""
    cache = tempfile.mkdtemp(prefix="pycache-")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    env["PREFECT_HOME"] = tempfile.mkdtemp(prefix="prefect-home-")
    results: Dict[str, Row] = {}
    for side, statement in IMPORTS.items():
        probe = _IMPORT_PROBE.format(statement=statement)
        subprocess.run([sys.executable, "-c", probe], env=env, check=True, capture_output=True)
        times, rss, forbidden = [], [], ""
        for _ in range(runs):
            out = subprocess.run(
                [sys.executable, "-c", probe], env=env, check=True, capture_output=True, text=True
            ).stdout.split()
            times.append(float(out[0]))
            rss.append(int(out[1]) / 1024)
            forbidden = out[2] if len(out) > 2 else ""
        results[side] = {
            "import_ms": statistics.median(times) * 1000,
            "rss_mb": statistics.median(rss),
            "heavy_modules": forbidden,
        }
    return results


# ---- 2. installed footprint ---------------------------------------------------------------------


def _venv_footprint(requirement: List[str]) -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        venv = pathlib.Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = str(venv / "bin" / "python")
        base = _site_size(python)
        before = _distributions(python)
        subprocess.run(
            [python, "-m", "pip", "install", "-q", *requirement],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        added = _distributions(python) - before
        return {"distributions": len(added), "mb": (_site_size(python) - base) / 1e6}


def _distributions(python: str) -> set:
    out = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"], check=True, capture_output=True, text=True
    ).stdout
    return {line.split("==")[0].lower() for line in out.splitlines() if "==" in line}


def _site_size(python: str) -> int:
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return sum(p.stat().st_size for p in pathlib.Path(site).rglob("*") if p.is_file())


def measure_footprint(remeasure: bool) -> Dict[str, Row]:
    cached = RESULTS / "footprint.json"
    if cached.exists() and not remeasure:
        return json.loads(cached.read_text())
    result = {
        "ours": _venv_footprint([str(ROOT)]),
        "prefect": _venv_footprint(["prefect-client>=3.9,<4"]),
        "floor": _venv_footprint(["requests", "msgspec"]),
        "measured": datetime.date.today().isoformat(),
    }
    RESULTS.mkdir(exist_ok=True)
    cached.write_text(json.dumps(result, indent=1))
    return result


# ---- 3. client CPU per call -------------------------------------------------------------------


class Floor:
    """The least a client can do: one requests.Session, msgspec.json.decode, no models."""

    def __init__(self, api_url: str) -> None:
        self.api = api_url
        self.session = requests.Session()
        self.session.headers["X-PREFECT-API-VERSION"] = "0.8.4"
        self.encode = msgspec.json.Encoder().encode

    def get(self, path: str, **params: str) -> Any:
        reply = self.session.get(self.api + path, params=params or None, timeout=60)
        reply.raise_for_status()
        return msgspec.json.decode(reply.content)

    def post(self, path: str, body: Any, method: str = "POST") -> Any:
        reply = self.session.request(
            method,
            self.api + path,
            data=self.encode(body),
            timeout=60,
            headers={"Content-Type": "application/json"},
        )
        reply.raise_for_status()
        return msgspec.json.decode(reply.content) if reply.content else None


def _floor_create(floor: Floor, key: str) -> Any:
    return floor.post("/task_runs/", {
        "state": {"type": "PENDING", "name": "Pending", "message": None, "state_details": {},
                  "data": None},
        "name": None, "flow_run_id": None, "task_key": key, "dynamic_key": "0",
        "cache_key": None, "cache_expiration": None, "task_version": None,
        "empirical_policy": {"max_retries": 0, "retry_delay_seconds": 0.0, "retries": 0,
                             "retry_delay": 0, "retry_jitter_factor": None},
        "tags": [], "labels": {}, "task_inputs": {}})  # fmt: skip


def method_calls(
    side: str, client: Any, task: Any, run_id: Any, states: Any
) -> Dict[str, Callable[[], Any]]:
    """One zero-argument callable per documented member, for one side."""
    if side == "floor":
        rid = str(run_id)
        return {
            "api_url": lambda: client.api + "/",
            "api_healthcheck": lambda: client.get("/health"),
            "hello": lambda: client.get("/hello"),
            "api_version": lambda: client.get("/admin/version"),
            "client_version": lambda: "3.9.1",
            "raise_for_api_version_mismatch": lambda: client.get("/admin/version"),
            "create_task_run": lambda: _floor_create(client, f"k-{uuid.uuid4().hex}"),
            "read_task_run": lambda: client.get(f"/task_runs/{rid}"),
            "read_task_runs": lambda: client.post("/task_runs/filter", {"limit": 10}),
            "set_task_run_state": lambda: client.post(
                f"/task_runs/{rid}/set_state", {"state": {"type": "RUNNING"}, "force": True}
            ),
            "set_task_run_name": lambda: client.post(f"/task_runs/{rid}", {"name": "n"}, "PATCH"),
            "read_task_run_states": lambda: client.get("/task_run_states/", task_run_id=rid),
        }
    return {
        "api_url": lambda: client.api_url,
        "api_healthcheck": client.api_healthcheck,
        "hello": client.hello,
        "api_version": client.api_version,
        "client_version": client.client_version,
        "raise_for_api_version_mismatch": client.raise_for_api_version_mismatch,
        "create_task_run": lambda: client.create_task_run(task, None, uuid.uuid4().hex),
        "read_task_run": lambda: client.read_task_run(run_id),
        "read_task_runs": lambda: client.read_task_runs(limit=10),
        "set_task_run_state": lambda: client.set_task_run_state(
            run_id, states.Running(), force=True
        ),
        "set_task_run_name": lambda: client.set_task_run_name(run_id, "n"),
        "read_task_run_states": lambda: client.read_task_run_states(run_id),
    }


def measure_calls(sides: Dict[str, Any], calls: int) -> Dict[str, Dict[str, Row]]:
    """Client CPU (process_time) and wall time per call, median of 5 batches."""
    results: Dict[str, Dict[str, Row]] = {}
    for side, callables in sides.items():
        for name, call in callables.items():
            call()  # warm up (CSRF probe, connection)
            cpu, wall = [], []
            batch = max(1, calls // 5)
            for _ in range(5):
                c0, w0 = time.process_time(), time.perf_counter()
                for _ in range(batch):
                    call()
                cpu.append((time.process_time() - c0) / batch)
                wall.append((time.perf_counter() - w0) / batch)
            results.setdefault(name, {})[side] = {
                "cpu_us": statistics.median(cpu) * 1e6,
                "wall_us": statistics.median(wall) * 1e6,
            }
    return results


def measure_stdlib_floor(api_url: str, calls: int) -> float:
    """CPU per GET /health with bare http.client and a kept-alive connection: what any
    Python HTTP client pays at least on this machine, before requests or urllib3."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(api_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)

    def get() -> None:
        connection.request("GET", parts.path + "/health")
        connection.getresponse().read()

    samples = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(calls):
            get()
        samples.append((time.process_time() - start) / calls)
    connection.close()
    return statistics.median(samples) * 1e6


# ---- 4. decode a 200-run page, encode a create body -----------------------------------------------


def best_of(function: Callable[[], Any], repeat: int = 7, number: int = 20) -> float:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            function()
        timings.append((time.perf_counter() - start) / number)
    return min(timings)


def measure_codec(page: bytes, prefect_task: Any) -> Dict[str, Row]:
    from prefect.client.schemas.actions import TaskRunCreate as PrefectCreate
    from prefect.client.schemas.objects import TaskRun as PrefectTaskRun
    from prefect.states import Pending as PrefectPending
    from prefect.states import to_state_create
    from pydantic import TypeAdapter

    from orchestration_client import _client
    from orchestration_client._models._bodies import StateCreate, TaskRunCreate
    from orchestration_client._models._codec import BodyEncoder
    from orchestration_client.schemas import TaskRun, TaskRunPolicy

    ours = msgspec.json.Decoder(List[TaskRun], strict=False)
    adapter = TypeAdapter(List[PrefectTaskRun])
    assert len(ours.decode(page)) == len(adapter.validate_json(page)) == 200
    decode = {
        "ours": best_of(lambda: ours.decode(page)),
        "prefect": best_of(lambda: adapter.validate_json(page)),
        "floor": best_of(lambda: msgspec.json.decode(page)),
    }

    encoder: BodyEncoder[Any] = _client._create_body

    def our_body() -> bytes:
        body = TaskRunCreate(
            state=StateCreate(type="PENDING", name="Pending"),
            task_key="k",  # type: ignore[arg-type]
            dynamic_key="0",
            empirical_policy=TaskRunPolicy(retries=0),
            tags=["a"],
            labels={},
            task_inputs={},
        )
        return encoder.encode(body, "bench")

    def prefect_body() -> bytes:
        body = PrefectCreate(
            state=to_state_create(PrefectPending()),
            task_key="k",
            dynamic_key="0",
            tags=["a"],
            labels={},
            task_inputs={},
        )
        return json.dumps(body.model_dump(mode="json", exclude={"id"})).encode()

    raw = {
        "state": {"type": "PENDING", "name": "Pending"},
        "task_key": "k",
        "dynamic_key": "0",
        "tags": ["a"],
        "labels": {},
        "task_inputs": {},
    }
    encode = {
        "ours": best_of(our_body, number=200),
        "prefect": best_of(prefect_body, number=200),
        "floor": best_of(lambda: msgspec.json.encode(raw), number=200),
    }
    return {
        "decode_200": {k: v * 1e6 for k, v in decode.items()},
        "encode_create": {k: v * 1e6 for k, v in encode.items()},
    }


# ---- 5. throughput ------------------------------------------------------------------------------


def run_lifecycles(client: Any, task: Any, states: Any, threads: int, count: int) -> Row:
    """``count`` lifecycles of create + Running + Completed on one shared client."""
    errors: List[str] = []
    lock = threading.Lock()

    def lifecycle(_: int) -> None:
        try:
            run = client.create_task_run(task, None, uuid.uuid4().hex)
            client.set_task_run_state(run.id, states.Running())
            client.set_task_run_state(run.id, states.Completed())
        except Exception as exc:  # counted and reported, never hidden
            with lock:
                errors.append(type(exc).__name__)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(lifecycle, range(count)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {
        "per_s": count / wall,
        "cpu_ms_per_lifecycle": cpu / count * 1000,
        "errors": len(errors),
    }


def measure_throughput(
    make: Dict[str, Callable[[], Tuple[Any, Any, Any]]], lifecycles: int
) -> Dict[str, Row]:
    return {
        f"{side}/{threads}": run_lifecycles(*factory(), threads, lifecycles)
        for side, factory in make.items()
        for threads in (1, 8)
    }


# ---- report ---------------------------------------------------------------------------------------


def ratio(a: float, b: float) -> str:
    return f"{a / b:6.2f}x" if b else "   n/a"


def report(data: Dict[str, Any]) -> None:
    print(f"\nmachine: {data['machine']}")
    print(f"versions: {data['versions']}\n")
    imports = data["imports"]
    print(
        f"{'1. cold import':34} {'ours':>10} {'prefect':>10} {'floor':>10} {'ours/pf':>8} {'ours/floor':>10}"
    )
    for key, unit in (("import_ms", "ms"), ("rss_mb", "MB")):
        o, p, f = (imports[s][key] for s in ("ours", "prefect", "floor"))
        print(
            f"  {key:32} {o:9.1f}{unit[0]} {p:9.1f}{unit[0]} {f:9.1f}{unit[0]} {ratio(o, p):>8} {ratio(o, f):>10}"
        )
    print(f"  heavy modules after import: ours={imports['ours']['heavy_modules'] or 'none'}")
    fp = data["footprint"]
    print(f"\n2. installed footprint (measured {fp['measured']}):")
    print(
        f"  distributions: ours {fp['ours']['distributions']}, prefect-client {fp['prefect']['distributions']}"
    )
    print(
        f"  MB: ours {fp['ours']['mb']:.1f}, prefect-client {fp['prefect']['mb']:.1f} "
        f"(ratio {fp['ours']['mb'] / fp['prefect']['mb']:.3f})"
    )
    print(
        f"\n{'3. per call (us)':34} {'cpu ours':>9} {'cpu pf':>9} {'cpu floor':>9} {'ours/pf':>8} {'ours/floor':>10} {'wall ours':>9} {'wall pf':>9}"
    )
    for name, sides in data["calls"].items():
        o, p, f = (sides[s]["cpu_us"] for s in ("ours", "prefect", "floor"))
        print(
            f"  {name:32} {o:9.0f} {p:9.0f} {f:9.0f} {ratio(o, p):>8} {ratio(o, f):>10} "
            f"{sides['ours']['wall_us']:9.0f} {sides['prefect']['wall_us']:9.0f}"
        )
    print(
        f"  (bare http.client GET /health, no requests/urllib3: {data['stdlib_floor_us']:.0f} us CPU)"
    )
    print("\n4. codec (us)                        ours    pydantic     floor  ours/pyd ours/floor")
    for name, row in data["codec"].items():
        print(
            f"  {name:30} {row['ours']:9.1f} {row['prefect']:9.1f} {row['floor']:9.1f} "
            f"{ratio(row['ours'], row['prefect']):>8} {ratio(row['ours'], row['floor']):>10}"
        )
    print("\n5. throughput (create + Running + Completed)")
    for name, row in data["throughput"].items():
        print(
            f"  {name:14} {row['per_s']:7.1f} lifecycles/s  {row['cpu_ms_per_lifecycle']:6.2f} ms CPU each"
            f"  errors {row['errors']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--footprint", action="store_true", help="re-measure installed footprint")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    runs, calls, lifecycles = (5, 25, 16) if args.quick else (21, 100, 64)

    home = pathlib.Path(tempfile.mkdtemp(prefix="bench-"))
    os.environ.update(PREFECT_HOME=str(home / "client"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    data: Dict[str, Any] = {"date": datetime.datetime.now().isoformat(timespec="seconds")}
    print("measuring imports ...", flush=True)
    data["imports"] = measure_imports(runs)
    print("measuring footprint ...", flush=True)
    data["footprint"] = measure_footprint(args.footprint)

    import prefect
    import prefect.states as prefect_states
    from prefect import task as prefect_task_decorator
    from prefect.client.orchestration import SyncPrefectClient as PrefectClient

    import orchestration_client
    import orchestration_client.states as our_states
    from orchestration_client.schemas import Task

    data["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"
    data["versions"] = {
        "python": platform.python_version(),
        "orchestration_client": orchestration_client.__version__,
        "prefect": prefect.__version__,
        "requests": requests.__version__,
        "msgspec": msgspec.__version__,
    }

    server = PrefectServer(home / "server", migrate_template(home / "template")).start()
    try:

        @prefect_task_decorator
        def bench_task() -> None: ...

        ours = orchestration_client.SyncPrefectClient(server.api_url)
        theirs = PrefectClient(server.api_url)
        floor = Floor(server.api_url)
        run = ours.create_task_run(Task(name="bench"), None, "0")
        print("measuring calls ...", flush=True)
        data["calls"] = measure_calls(
            {
                "ours": method_calls("ours", ours, Task(name="bench"), run.id, our_states),
                "prefect": method_calls("prefect", theirs, bench_task, run.id, prefect_states),
                "floor": method_calls("floor", floor, None, run.id, None),
            },
            calls,
        )
        data["stdlib_floor_us"] = measure_stdlib_floor(server.api_url, calls)
        for index in range(200 - len(ours.read_task_runs(limit=200))):
            ours.create_task_run(Task(name="page"), None, f"page-{index}")
        page = requests.post(
            f"{server.api_url}/task_runs/filter", json={"limit": 200}, timeout=60
        ).content
        (RESULTS / "page_200.json").write_bytes(page)
        print("measuring codec ...", flush=True)
        data["codec"] = measure_codec(page, bench_task)
        print("measuring throughput ...", flush=True)
        data["throughput"] = measure_throughput(
            {
                "ours": lambda: (
                    orchestration_client.SyncPrefectClient(server.api_url),
                    Task(name="tp"),
                    our_states,
                ),
                "prefect": lambda: (PrefectClient(server.api_url), bench_task, prefect_states),
            },
            lifecycles,
        )
    finally:
        server.stop()
    report(data)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compare.json").write_text(json.dumps(data, indent=1))
    print(f"\nwritten: {RESULTS / 'compare.json'}")
    draw_charts("compare_charts", data)


def draw_charts(kind: str, data: Dict[str, Any]) -> None:
    """Redraw this benchmark's SVG charts (matplotlib is a benchmark-only dependency)."""
    try:
        import charts
    except ImportError:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import charts
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("charts not redrawn: pip install -e '.[bench]' for matplotlib")
        return
    for path in getattr(charts, kind)(data):
        print(f"written: {path}")


if __name__ == "__main__":
    main()
