"""Fault scenarios at scale, against real Prefect servers and a scripted stub on 127.0.0.1.

    python benchmarks/faults.py                  # every row (about 10 minutes)
    python benchmarks/faults.py issue19          # only the PostgreSQL restart/outage rows
    python benchmarks/faults.py issue19 --long-outage   # and PostgreSQL down 2 minutes

The PostgreSQL rows use the production topology of tests/support/topology.py (PostgreSQL, two
Prefect replicas, nginx) and compare our client with Prefect's in the same run.

For each scenario it prints operations attempted, succeeded, failed with a clear error (one
of this package's exceptions), lost (a run the client was told exists but the server lacks)
and duplicated (a run the server holds more than once), plus the slowest single call.
Writes the table as JSON to benchmarks/results/faults.json. Takes a few minutes.
"""

import collections
import concurrent.futures
import contextlib
import datetime
import email.utils
import json
import multiprocessing
import os
import pathlib
import random
import re
import resource
import sys
import tempfile
import threading
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.fault_proxy import FaultProxy  # noqa: E402
from support.helpers import runs_tagged  # noqa: E402
from support.prefect_server import PrefectServer, migrate_template  # noqa: E402
from support.stub_server import HANG, StubServer, json_reply  # noqa: E402

from orchestration_client import SyncPrefectClient  # noqa: E402
from orchestration_client.exceptions import OrchestrationClientError  # noqa: E402
from orchestration_client.schemas import StateType, Task  # noqa: E402
from orchestration_client.states import Completed, Running  # noqa: E402

Row = Dict[str, Any]


class WrongReply(Exception):
    """A call returned another request's data: counted as an unclear failure."""


class Tally:
    """Counts outcomes of operations run from many threads."""

    def __init__(self, clear: Tuple[Type[BaseException], ...] = (OrchestrationClientError,)) -> None:
        self.clear_types = clear
        self.attempted = self.succeeded = self.clear = self.unclear = 0
        self.slowest = 0.0
        self.ids: List[uuid.UUID] = []
        self.errors: collections.Counter[str] = collections.Counter()
        self.examples: Dict[str, str] = {}  # the first message of each kind of error
        self._lock = threading.Lock()

    def run(self, operation: Callable[[], Optional[uuid.UUID]]) -> None:
        started = time.monotonic()
        outcome = "succeeded"
        run_id = None
        error = message = ""
        try:
            run_id = operation()
        except self.clear_types as exc:
            outcome, error, message = "clear", _kind(exc), str(exc)
        except Exception as exc:  # anything else is a bug in error handling: counted apart
            outcome, error, message = "unclear", _kind(exc), str(exc)
        with self._lock:
            self.attempted += 1
            setattr(self, outcome, getattr(self, outcome) + 1)
            self.slowest = max(self.slowest, time.monotonic() - started)
            if run_id is not None:
                self.ids.append(run_id)
            if error:
                self.errors[error] += 1
                self.examples.setdefault(error, message[:600])

    def row(self, client: Optional[SyncPrefectClient] = None, tag: str = "") -> Row:
        lost = duplicated = unfinished = 0
        if client is not None:
            stored = runs_tagged(client, tag)
            stored_ids = [run.id for run in stored]
            lost = len(set(self.ids) - set(stored_ids))
            duplicated = len(stored_ids) - len(set(stored_ids))
            finished = {r.id for r in stored if r.state_type == StateType.COMPLETED}
            unfinished = len(set(self.ids) - finished)
        return {"attempted": self.attempted, "succeeded": self.succeeded,
                "failed_clearly": self.clear, "failed_unclearly": self.unclear,
                "lost": lost, "duplicated": duplicated, "not_completed": unfinished,
                "slowest_s": round(self.slowest, 2)}




def _kind(exc: BaseException) -> str:
    """An error's type, with the status and endpoint of an HTTP error
    (``PrefectHTTPStatusError 500 POST /task_runs/``)."""
    response = getattr(exc, "response", None)
    status = getattr(exc, "status_code", None) or getattr(response, "status_code", None)
    if status is None:
        return type(exc).__name__
    request = getattr(exc, "request", None) or getattr(response, "request", None)
    where = ""
    if request is not None:
        path = str(request.url).split("/api", 1)[-1].split("?")[0]
        where = f" {request.method} {_UUID.sub('{id}', path)}"
    return f"{type(exc).__name__} {status}{where}"


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def lifecycle(client: SyncPrefectClient, tag: str) -> uuid.UUID:
    run_id = uuid.uuid4()
    client.create_task_run(Task(name="fault", tags=[tag]), None, run_id.hex, id=run_id)
    client.set_task_run_state(run_id, Running())
    client.set_task_run_state(run_id, Completed())
    return run_id


def in_threads(threads: int, count: int, operation: Callable[[int], None]) -> None:
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(operation, range(count)))


# ---- scenarios ------------------------------------------------------------------------------


def restarts(make_server: Callable[..., PrefectServer]) -> Row:
    server = make_server()
    tag = f"restart-{uuid.uuid4().hex[:6]}"
    client = SyncPrefectClient(server.api_url, httpx_settings={"timeout": 10})
    tally, progress = Tally(), threading.Semaphore(0)

    def chaos() -> None:
        for wait in (100, 150):
            for _ in range(wait):
                progress.acquire()
            server.kill()
            time.sleep(2)
            server.start()

    killer = threading.Thread(target=chaos)
    killer.start()

    def one(_: int) -> None:
        tally.run(lambda: lifecycle(client, tag))
        progress.release()

    in_threads(4, 400, one)
    killer.join()
    row = tally.row(client, tag)
    server.stop()
    return row


def retry_after_forms() -> Row:
    stub = StubServer(fallback=json_reply(200, b'"3.9.1"'))
    forms = {
        "int": lambda: "1",
        "float": lambda: "0.25",
        "date": lambda: email.utils.formatdate(time.time() + 1, usegmt=True),
        "junk": lambda: "later",
    }
    tally, within = Tally(), []
    lock = threading.Lock()
    os.environ["PREFECT_CLIENT_CSRF_SUPPORT_ENABLED"] = "false"
    client = SyncPrefectClient(stub.api_url)
    client.api_version()

    def one(index: int) -> None:
        form = list(forms)[index % 4]
        expected = {"int": (1.0, 1.2), "float": (0.25, 0.3), "date": (0.0, 1.2), "junk": (1.6, 2.4)}
        with lock:
            stub.script.append(json_reply(random.choice([429, 503, 502]), Retry_After=forms[form]()))
        started = time.monotonic()
        tally.run(lambda: client.api_version() and None)
        low, high = expected[form]
        with lock:
            within.append(low - 0.05 <= time.monotonic() - started <= high + 0.5)

    in_threads(1, 40, one)
    del os.environ["PREFECT_CLIENT_CSRF_SUPPORT_ENABLED"]
    stub.stop()
    return {**tally.row(), "waits_as_asked": f"{sum(within)}/{len(within)}"}


def no_answer() -> Row:
    stub = StubServer(fallback=HANG)
    client = SyncPrefectClient(stub.api_url, httpx_settings={"timeout": 1})
    tally = Tally()
    in_threads(4, 20, lambda _: tally.run(lambda: client.hello() and None))
    stub.stop()
    return tally.row()


def malformed() -> Row:
    replies = [
        json_reply(200, b"<html>gateway</html>", Content_Type="text/html"),
        json_reply(200, b'{"id": "1c704402-4756-47e2-ab3f'),
        json_reply(200, b'{"id": 42, "name": [], "task_key": 1, "dynamic_key": null}'),
        json_reply(200, b""),
    ]
    stub = StubServer(fallback=json_reply(200, b'"3.9.1"'))
    client = SyncPrefectClient(stub.api_url)
    tally = Tally()
    for index in range(100):
        stub.script.append(replies[index % 4])
        tally.run(lambda: client.read_task_run(uuid.uuid4()) and None)
    stub.stop()
    return tally.row()


def csrf(make_server: Callable[..., PrefectServer]) -> Row:
    server = make_server(env={"PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED": "true",
                              "PREFECT_SERVER_API_CSRF_TOKEN_EXPIRATION": "PT2S"})
    tag = f"csrf-{uuid.uuid4().hex[:6]}"
    client, tally = SyncPrefectClient(server.api_url), Tally()
    in_threads(2, 150, lambda _: tally.run(lambda: lifecycle(client, tag)))
    row = tally.row(client, tag)
    server.stop()
    return row


def basic_auth(make_server: Callable[..., PrefectServer]) -> Dict[str, Row]:
    secret = "admin:" + uuid.uuid4().hex
    server = make_server(env={"PREFECT_SERVER_API_AUTH_STRING": secret})
    tag = f"auth-{uuid.uuid4().hex[:6]}"
    right, wrong = SyncPrefectClient(server.api_url, auth_string=secret), Tally()
    good = Tally()
    in_threads(2, 100, lambda _: good.run(lambda: lifecycle(right, tag)))
    bad_client = SyncPrefectClient(server.api_url, auth_string="admin:wrong")
    in_threads(2, 100, lambda _: wrong.run(lambda: lifecycle(bad_client, tag)))
    rows = {"basic auth, right secret": good.row(right, tag),
            "basic auth, wrong secret": wrong.row()}
    server.stop()
    return rows


def shared_client(make_server: Callable[..., PrefectServer]) -> Row:
    server = make_server()
    tag = f"threads-{uuid.uuid4().hex[:6]}"
    client, tally = SyncPrefectClient(server.api_url), Tally()
    in_threads(8, 8 * 250 // 3, lambda _: tally.run(lambda: lifecycle(client, tag)))
    row = tally.row(client, tag)
    server.stop()
    return row

# ---- issue 19: the database behind the servers restarts --------------------------------------


@contextlib.contextmanager
def _environment(values: Dict[str, str]) -> Any:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def postgres_outage(topology: Any, down: float, which: str, *, env: Optional[Dict[str, str]] = None,
                    threads: int = 8, seconds: float = 14.0, crash_at: float = 4.0) -> Row:
    """``threads`` threads share one client through the topology's nginx, each running
    lifecycles (create with a client id, Running, Completed) one after another for
    ``seconds``; ``crash_at`` s in, PostgreSQL stops at once (``pg_ctl -m immediate``) and
    starts again ``down`` s later. Calls under way when the lifecycles' time is up finish.

    Every run is then read back: duplicated means a run stored twice, or a history that
    is not exactly Pending, Running, Completed with run_count 1 after the client said done
    (or with a state twice, for a failed lifecycle); lost means reported done but not so."""
    tag = f"pg-{which}-{uuid.uuid4().hex[:6]}"
    with _environment(env or {}):
        if which == "ours":
            client: Any = SyncPrefectClient(topology.api_url)
            tally = Tally()
            create: Callable[[uuid.UUID], Any] = lambda run_id: client.create_task_run(  # noqa: E731
                Task(name="outage", tags=[tag]), None, run_id.hex, id=run_id)
            running, completed = Running, Completed
        else:
            import httpx
            from prefect import task
            from prefect.client.orchestration import SyncPrefectClient as PrefectClient
            from prefect.exceptions import PrefectException
            from prefect.states import Completed as completed
            from prefect.states import Running as running

            @task(name="outage")
            def outage() -> None: ...

            client = PrefectClient(topology.api_url)
            client.__enter__()
            tally = Tally(clear=(httpx.HTTPError, PrefectException))
            create = lambda run_id: client.create_task_run(  # noqa: E731
                outage, None, run_id.hex, id=run_id, extra_tags=[tag])

    finished_at: List[float] = []

    def one() -> uuid.UUID:
        run_id = uuid.uuid4()
        create(run_id)
        client.set_task_run_state(run_id, running())
        client.set_task_run_state(run_id, completed())
        finished_at.append(time.monotonic() - began)
        return run_id

    began = time.monotonic()
    deadline = began + seconds
    outage_log: Dict[str, float] = {}

    def chaos() -> None:
        time.sleep(crash_at)
        outage_log["down_at"] = time.monotonic() - began
        topology.postgres.crash()
        time.sleep(down)
        topology.postgres.resume()
        outage_log["up_at"] = time.monotonic() - began

    def worker(_: int) -> None:
        while time.monotonic() < deadline:
            tally.run(one)

    breaker = threading.Thread(target=chaos)
    breaker.start()
    in_threads(threads, threads, worker)
    breaker.join()
    finished_after = time.monotonic() - began
    if which != "ours":
        client.__exit__(None, None, None)
    checker = SyncPrefectClient(topology.api_url)
    stored = runs_tagged(checker, tag)
    ids = [run.id for run in stored]
    done = set(tally.ids)
    duplicated = len(ids) - len(set(ids))
    lost = len(done - set(ids))
    odd: List[str] = [f"{run_id}: not stored" for run_id in done - set(ids)]
    for run in stored:
        names = [state.name for state in checker.read_task_run_states(run.id)]
        if run.run_count > 1 or len(names) != len(set(names)):
            duplicated += 1
        elif run.id in done and names != ["Pending", "Running", "Completed"]:
            lost += 1
        else:
            continue
        odd.append(f"{run.id}: {names}, run_count {run.run_count}, done {run.id in done}")
    if odd and os.environ.get("FAULTS_VERBOSE"):
        print("\n".join(odd[:10]), flush=True)
    checker.__exit__(None, None, None)
    down_at, up_at = outage_log.get("down_at", 0.0), outage_log.get("up_at", 0.0)
    after = [t for t in finished_at if up_at <= t < seconds]
    rates = {"per_s_before": round(sum(t < down_at for t in finished_at) / down_at, 1),
             "per_s_after": round(len(after) / (seconds - up_at), 1) if up_at < seconds else None}
    return {**tally.row(), "lost": lost, "duplicated": duplicated, **rates,
            "errors": dict(tally.errors), "error_examples": tally.examples,
            "lifecycles_ended_s": round(finished_after, 1),
            "outage_s": [round(outage_log.get("down_at", 0), 1), round(outage_log.get("up_at", 0), 1)]}


def postgres_outages(home: pathlib.Path, *, long_outage: bool = False) -> Dict[str, Row]:
    """The issue-19 rows: PostgreSQL behind two replicas and nginx restarts (3 s) or stays
    down (30 s; 2 minutes with ``long_outage``), for our client with its defaults, with the
    documented setting for longer outages, and for Prefect's client, in the same run."""
    from support.topology import Topology, missing_components

    missing = missing_components()
    if missing:
        print(f"skipped: the PostgreSQL rows need {', '.join(missing)}", flush=True)
        return {}
    plans: List[Tuple[float, str, Dict[str, str], str]] = [
        (3, "ours", {}, "orchestration_client"),
        (3, "prefect", {}, "Prefect 3.9.1 client"),
        (30, "ours", {}, "orchestration_client, defaults"),
        (30, "ours", {"ORCHESTRATION_CLIENT_RETRY_500_SECONDS": "60"},
         "orchestration_client, ORCHESTRATION_CLIENT_RETRY_500_SECONDS=60"),
        (30, "prefect", {}, "Prefect 3.9.1 client"),
    ]
    if long_outage:
        plans += [
            (120, "ours", {}, "orchestration_client, defaults"),
            (120, "ours", {"ORCHESTRATION_CLIENT_RETRY_500_SECONDS": "180",
                           "PREFECT_CLIENT_MAX_RETRIES": "7"},
             "orchestration_client, ORCHESTRATION_CLIENT_RETRY_500_SECONDS=180 and "
             "PREFECT_CLIENT_MAX_RETRIES=7"),
            (120, "prefect", {}, "Prefect 3.9.1 client"),
        ]
    rows: Dict[str, Row] = {}
    topology = Topology(home / "topology").start()
    try:
        for down, which, env, label in plans:
            what = "PostgreSQL restart, 3 s" if down == 3 else (
                f"PostgreSQL down {down:g} s" if down < 60 else f"PostgreSQL down {down / 60:g} min")
            name = f"{what} (8 threads, 14 s of lifecycles), {label}"
            print(f"running: {name} ...", flush=True)
            rows[name] = postgres_outage(topology, down, which, env=env)
            print(f"  {rows[name]}", flush=True)
            time.sleep(6)  # nginx's fail_timeout (5 s) passes; the next run starts clean
    finally:
        topology.stop()
    return rows


# ---- issue 10: lost replies, forked workers, hostile proxies ------------------------------


def _history_row(tally: Tally, direct: SyncPrefectClient, expected: List[str]) -> Row:
    """Lost: a run whose state changes the client reported as done but the server lacks.
    Duplicated: a run whose history holds a state more than once (or run_count > 1)."""
    lost = duplicated = 0
    for run_id in tally.ids:
        history = [s.name for s in direct.read_task_run_states(run_id)]
        if len(history) > len(expected) or direct.read_task_run(run_id).run_count > 1:
            duplicated += 1
        elif history != expected:
            lost += 1
    return {**tally.row(), "lost": lost, "duplicated": duplicated}


def lost_state_replies(server: PrefectServer, which: str) -> Row:
    """40 lifecycles on 4 threads; the proxy loses 1 in 3 set_state replies after the server
    committed (a reset) and answers 502 after committing to 2 in 9 more."""
    proxy = FaultProxy(server.port)
    proxy.add("drop", "POST", "/set_state", times=10**6, every=3)
    proxy.add("502", "POST", "/set_state", times=10**6, every=3)
    direct = SyncPrefectClient(server.api_url)
    if which == "ours":
        client: Any = SyncPrefectClient(proxy.api_url)
        running, completed = Running, Completed
        tally = Tally()
    else:
        import httpx
        from prefect.client.orchestration import SyncPrefectClient as PrefectClient
        from prefect.exceptions import PrefectException
        from prefect.states import Completed as completed
        from prefect.states import Running as running

        client = PrefectClient(proxy.api_url)
        client.__enter__()
        tally = Tally(clear=(httpx.HTTPError, PrefectException))

    def one(_: int) -> Optional[uuid.UUID]:
        run_id = direct.create_task_run(Task(name="lost-reply"), None, uuid.uuid4().hex).id
        client.set_task_run_state(run_id, running())
        client.set_task_run_state(run_id, completed())
        return run_id

    in_threads(4, 40, lambda i: tally.run(lambda: one(i)))
    faults = sum(action != "pass" for action in proxy.actions())
    if which != "ours":
        client.__exit__(None, None, None)
    proxy.stop()
    row = _history_row(tally, direct, ["Pending", "Running", "Completed"])
    return {**row, "note": f"{faults} replies lost"}


def _forked_worker(client: SyncPrefectClient, tag: str, count: int, out: Any, go: Any) -> None:
    go.wait(60)  # all processes start together
    for _ in range(count):
        started = time.monotonic()
        outcome, run_id = "succeeded", None
        try:
            wanted = uuid.uuid4()
            run = client.create_task_run(Task(name="fork", tags=[tag]), None, wanted.hex, id=wanted)
            if run.id != wanted:
                raise WrongReply(f"asked to create {wanted}, got {run.id}")
            for _ in range(3):
                if client.read_task_run(wanted).id != wanted:
                    raise WrongReply("read another run")
            client.set_task_run_state(wanted, Running())
            result = client.set_task_run_state(wanted, Completed())
            if result.state is None or result.state.state_details.task_run_id != wanted:
                raise WrongReply("a state result for another run")
            run_id = wanted
        except OrchestrationClientError as exc:
            outcome = "clear"
            if os.environ.get("FAULTS_VERBOSE"):
                print(f"  pid {os.getpid()}: {exc!r}"[:300], flush=True)
        except Exception as exc:
            outcome = "unclear"
            if os.environ.get("FAULTS_VERBOSE"):
                print(f"  pid {os.getpid()}: {exc!r}"[:300], flush=True)
        out.put((outcome, time.monotonic() - started, run_id and str(run_id)))


def forked_workers(make_server: Callable[..., PrefectServer]) -> Row:
    """A client used once, then os.fork()ed: the parent and 4 children each run 20
    lifecycles (create, 3 reads, Running, Completed) on it at the same time. A reply for
    another process's request counts as unclear."""
    server = make_server()
    tag = f"fork-{uuid.uuid4().hex[:6]}"
    client = SyncPrefectClient(server.api_url)
    client.api_version()  # the parent now holds a pooled connection the children inherit
    context = multiprocessing.get_context("fork")
    out, go = context.Queue(), context.Event()
    children = [context.Process(target=_forked_worker, args=(client, tag, 20, out, go))
                for _ in range(4)]
    for child in children:
        child.start()
    time.sleep(1)
    go.set()
    _forked_worker(client, tag, 20, out, go)
    tally = Tally()
    for _ in range(5 * 20):
        outcome, seconds, run_id = out.get(timeout=300)
        tally.attempted += 1
        setattr(tally, outcome, getattr(tally, outcome) + 1)
        tally.slowest = max(tally.slowest, seconds)
        if run_id:
            tally.ids.append(uuid.UUID(run_id))
    for child in children:
        child.join(timeout=60)
    row = tally.row(SyncPrefectClient(server.api_url), tag)
    server.stop()
    return row


def _bounded(tally: Tally, operation: Callable[[], Optional[uuid.UUID]], limit: float) -> None:
    """Run one call, giving up on it after ``limit`` s (it may sleep for years): a call
    still running then counts as an unclear failure."""
    done = threading.Event()
    box: Dict[str, Any] = {}

    def call() -> None:
        inner = Tally(tally.clear_types)
        inner.run(operation)
        box["tally"] = inner
        done.set()

    started = time.monotonic()
    threading.Thread(target=call, daemon=True).start()
    finished = done.wait(limit)
    tally.attempted += 1
    if not finished:
        tally.unclear += 1
        tally.slowest = max(tally.slowest, time.monotonic() - started)
        return
    inner = box["tally"]
    tally.succeeded += inner.succeeded
    tally.clear += inner.clear
    tally.unclear += inner.unclear
    tally.slowest = max(tally.slowest, inner.slowest)


def hostile_proxy(server: PrefectServer) -> Dict[str, Row]:
    """One proxy in front of a real server, one hostile behaviour per row, a fresh client
    (5 s timeout) for each. Every read checks that it got the run it asked for."""
    direct = SyncPrefectClient(server.api_url)
    ids = [direct.create_task_run(Task(name="hostile"), None, f"h{i}").id for i in range(2)]
    rows: Dict[str, Row] = {}

    def read(client: SyncPrefectClient, index: int) -> uuid.UUID:
        wanted = ids[index % 2]
        got = client.read_task_run(wanted).id
        if got != wanted:
            raise WrongReply(f"asked for {wanted}, got {got}")
        return got

    def scenario(name: str, rule: Dict[str, Any], calls: int, limit: float,
                 operation: Callable[[SyncPrefectClient, int], Any]) -> None:
        proxy = FaultProxy(server.port)
        proxy.add(**rule)
        client = SyncPrefectClient(proxy.api_url, httpx_settings={"timeout": 5})
        tally = Tally()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for index in range(calls):
            _bounded(tally, lambda i=index: operation(client, i) and None, limit)
        grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
        proxy.stop()
        rows[name] = {**tally.row(), "note": f"peak RSS +{grew:.0f} MB" if grew > 20 else ""}
        print(f"  {name}: {rows[name]}", flush=True)

    scenario("1xx interim reply (103) before every reply, 20 reads",
             {"action": "interim", "method": "GET", "path": "/task_runs/", "times": 10**6},
             20, 30, read)
    scenario("slow drip (a byte every 0.05 s), timeout 5 s, 3 reads",
             {"action": "drip", "method": "GET", "path": "/task_runs/", "times": 10**6,
              "drip_seconds": 0.05}, 3, 200, read)
    scenario("reset mid-body (every 2nd reply), 20 reads",
             {"action": "reset_mid_body", "method": "GET", "path": "/task_runs/",
              "times": 10**6, "every": 2}, 20, 30, read)
    scenario("oversized body (64 MB chunked), 3 reads",
             {"action": "oversized", "method": "POST", "path": "/task_runs/filter",
              "times": 10**6}, 3, 60, lambda c, i: c.read_task_runs(limit=1) and None)
    for value in ("1000000000", "1e10"):
        scenario(f"Retry-After: {value} (call abandoned after 10 s), 2 calls",
                 {"action": "retry_after", "method": "GET", "path": "/hello", "times": 10**6,
                  "retry_after": value}, 2, 10, lambda c, i: c.hello() and None)
    return rows



def retry_after_over_cap() -> Row:
    """Retry-After asking for more than the 60 s cap: every call fails at once, clearly."""
    asks = ["1000000000", "1e10", "Fri, 31 Dec 9999 23:59:59 GMT", "3600"]
    stub = StubServer(fallback=json_reply(200, b'"3.9.1"'))
    os.environ["PREFECT_CLIENT_CSRF_SUPPORT_ENABLED"] = "false"
    client, tally = SyncPrefectClient(stub.api_url), Tally()
    for index in range(40):
        stub.script.append(json_reply([429, 503][index % 2], Retry_After=asks[index % 4]))
        tally.run(lambda: client.api_version() and None)
    del os.environ["PREFECT_CLIENT_CSRF_SUPPORT_ENABLED"]
    stub.stop()
    return tally.row()


def csrf_endpoint_hangs() -> Row:
    """The CSRF token endpoint never answers; 8 threads, timeout 1 s each."""
    stub = StubServer(fallback=json_reply(200, b"true"))
    stub.next_reply = lambda method, path: HANG if "csrf-token" in path else stub.fallback  # type: ignore[method-assign]
    client, tally = SyncPrefectClient(stub.api_url, httpx_settings={"timeout": 1}), Tally()
    in_threads(8, 8, lambda _: tally.run(lambda: client.set_task_run_name(uuid.uuid4(), "n") and None))
    stub.stop()
    return tally.row()


def attribution_non_latin1() -> Row:
    """PREFECT__FLOW_NAME and friends outside Latin-1, custom headers too."""
    names = {"PREFECT__FLOW_NAME": "データ処理", "PREFECT__DEPLOYMENT_NAME": "déploiement 🚀",
             "PREFECT__WORKER_NAME": "ワーカー", "PREFECT_CLIENT_CUSTOM_HEADERS": '{"X-Team": "チーム"}',
             "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED": "false"}
    os.environ.update(names)
    stub = StubServer(fallback=json_reply(200, b'"3.9.1"'))
    client, tally = SyncPrefectClient(stub.api_url), Tally()
    in_threads(4, 40, lambda _: tally.run(lambda: client.api_version() and None))
    for name in names:
        del os.environ[name]
    stub.stop()
    return tally.row()


def _read_missing(api_url: str) -> None:
    os.environ["PREFECT_CLIENT_CSRF_SUPPORT_ENABLED"] = "false"
    SyncPrefectClient(api_url).read_task_run(uuid.uuid4())


def pool_workers_raise() -> Row:
    """ProcessPoolExecutor workers whose calls raise ObjectNotFound: errors cross the pool."""
    import multiprocessing

    stub = StubServer(fallback=json_reply(404, b'{"detail": "Task run not found"}'))
    tally = Tally()
    with concurrent.futures.ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_read_missing, stub.api_url) for _ in range(40)]
        for future in futures:
            tally.run(lambda future=future: future.result(timeout=120))  # type: ignore[misc]
    stub.stop()
    return tally.row()


def main() -> None:
    home = pathlib.Path(tempfile.mkdtemp(prefix="faults-"))
    only = sys.argv[1:]
    template = None if "issue19" in only else migrate_template(home / "template")
    started: List[PrefectServer] = []

    def make_server(env: Optional[Dict[str, str]] = None) -> PrefectServer:
        server = PrefectServer(home / f"server-{len(started)}", template, env=env)
        started.append(server)
        return server.start()

    rows: Dict[str, Row] = {}
    # "issue10" or "issue19" runs only the rows added for that issue; "--long-outage" adds
    # the PostgreSQL-down-2-minutes rows (about 8 more minutes).
    try:
        if "issue19" not in only:
            # Forked workers first: fork() before this process has started any thread.
            print("running: forked workers ...", flush=True)
            rows["client used before fork(), parent + 4 children, 100 lifecycles with reads"] = \
                forked_workers(make_server)
            if "issue10" not in only:
                for name, scenario in [
                    ("server killed twice, 400 lifecycles, 4 threads", lambda: restarts(make_server)),
                    ("429/502/503 + Retry-After (int, float, date, junk)", retry_after_forms),
                    ("server never answers (timeout 1 s)", no_answer),
                    ("malformed 200 replies", malformed),
                    ("CSRF on, 2 s tokens, 150 lifecycles", lambda: csrf(make_server)),
                    ("8 threads, one client, 666 lifecycles", lambda: shared_client(make_server)),
                ]:
                    print(f"running: {name} ...", flush=True)
                    rows[name] = scenario()
                print("running: basic auth ...", flush=True)
                rows.update(basic_auth(make_server))
            for name, scenario in [
                ("Retry-After over the 60 s cap (1e9, 1e10, year 9999, 3600)", retry_after_over_cap),
                ("CSRF token endpoint hangs, 8 threads, timeout 1 s", csrf_endpoint_hangs),
                ("non-Latin-1 attribution and custom header values", attribution_non_latin1),
                ("process-pool workers raising ObjectNotFound", pool_workers_raise),
            ]:
                print(f"running: {name} ...", flush=True)
                rows[name] = scenario()
            server = make_server()
            for which in ("ours", "prefect"):
                print(f"running: lost set_state replies ({which}) ...", flush=True)
                label = "orchestration_client" if which == "ours" else "Prefect 3.9.1 client"
                rows[f"lost set_state replies (reset or 502 after commit), 40 lifecycles, {label}"] = \
                    lost_state_replies(server, which)
            print("running: hostile proxy replies ...", flush=True)
            rows.update(hostile_proxy(server))
        if "issue10" not in only:
            rows.update(postgres_outages(home, long_outage="--long-outage" in only))
    finally:
        for server in started:
            server.stop()

    print("\n| scenario | attempted | succeeded | failed, clear error | failed, unclear | lost | duplicated | succeeded but not Completed | slowest call |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, row in rows.items():
        extra = f" (waits as asked: {row['waits_as_asked']})" if "waits_as_asked" in row else ""
        extra += f" ({row['note']})" if row.get("note") else ""
        if row.get("errors"):
            kinds = ", ".join(f"{count} x {kind}" for kind, count in row["errors"].items())
            extra += f" (failed: {kinds})"
        print(f"| {name}{extra} | {row['attempted']} | {row['succeeded']} | {row['failed_clearly']} | "
              f"{row['failed_unclearly']} | {row['lost']} | {row['duplicated']} | "
              f"{row.get('not_completed', 0)} | {row['slowest_s']} s |")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    name = next((f"faults-{issue}.json" for issue in ("issue10", "issue19") if issue in only),
                "faults.json")
    (results / name).write_text(json.dumps(
        {"date": datetime.datetime.now().isoformat(timespec="seconds"), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
