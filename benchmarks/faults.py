"""Fault scenarios at scale, against real Prefect servers and a scripted stub on 127.0.0.1.

    python benchmarks/faults.py

For each scenario it prints operations attempted, succeeded, failed with a clear error (one
of this package's exceptions), lost (a run the client was told exists but the server lacks)
and duplicated (a run the server holds more than once), plus the slowest single call.
Writes the table as JSON to benchmarks/results/faults.json. Takes a few minutes.
"""

import concurrent.futures
import datetime
import email.utils
import json
import os
import pathlib
import random
import sys
import tempfile
import threading
import time
import uuid
from typing import Any, Callable, Dict, List, Optional

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import runs_tagged  # noqa: E402
from prefect_server import PrefectServer, migrate_template  # noqa: E402
from stub_server import HANG, StubServer, json_reply  # noqa: E402

from orchestration_client import SyncPrefectClient  # noqa: E402
from orchestration_client.exceptions import OrchestrationClientError  # noqa: E402
from orchestration_client.schemas import StateType, Task  # noqa: E402
from orchestration_client.states import Completed, Running  # noqa: E402

Row = Dict[str, Any]


class Tally:
    """Counts outcomes of operations run from many threads."""

    def __init__(self) -> None:
        self.attempted = self.succeeded = self.clear = self.unclear = 0
        self.slowest = 0.0
        self.ids: List[uuid.UUID] = []
        self._lock = threading.Lock()

    def run(self, operation: Callable[[], Optional[uuid.UUID]]) -> None:
        started = time.monotonic()
        outcome = "succeeded"
        run_id = None
        try:
            run_id = operation()
        except OrchestrationClientError:
            outcome = "clear"
        except Exception:  # anything else is a bug in error handling: counted apart
            outcome = "unclear"
        with self._lock:
            self.attempted += 1
            setattr(self, outcome, getattr(self, outcome) + 1)
            self.slowest = max(self.slowest, time.monotonic() - started)
            if run_id is not None:
                self.ids.append(run_id)

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
    template = migrate_template(home / "template")
    started: List[PrefectServer] = []

    def make_server(env: Optional[Dict[str, str]] = None) -> PrefectServer:
        server = PrefectServer(home / f"server-{len(started)}", template, env=env)
        started.append(server)
        return server.start()

    rows: Dict[str, Row] = {}
    try:
        for name, scenario in [
            ("server killed twice, 400 lifecycles, 4 threads", lambda: restarts(make_server)),
            ("429/502/503 + Retry-After (int, float, date, junk)", retry_after_forms),
            ("server never answers (timeout 1 s)", no_answer),
            ("malformed 200 replies", malformed),
            ("CSRF on, 2 s tokens, 150 lifecycles", lambda: csrf(make_server)),
            ("8 threads, one client, 666 lifecycles", lambda: shared_client(make_server)),
            ("Retry-After over the 60 s cap (1e9, 1e10, year 9999, 3600)", retry_after_over_cap),
            ("CSRF token endpoint hangs, 8 threads, timeout 1 s", csrf_endpoint_hangs),
            ("non-Latin-1 attribution and custom header values", attribution_non_latin1),
            ("process-pool workers raising ObjectNotFound", pool_workers_raise),
        ]:
            print(f"running: {name} ...", flush=True)
            rows[name] = scenario()
        print("running: basic auth ...", flush=True)
        rows.update(basic_auth(make_server))
    finally:
        for server in started:
            server.stop()

    print("\n| scenario | attempted | succeeded | failed, clear error | failed, unclear | lost | duplicated | succeeded but not Completed | slowest call |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, row in rows.items():
        extra = f" (waits as asked: {row['waits_as_asked']})" if "waits_as_asked" in row else ""
        print(f"| {name}{extra} | {row['attempted']} | {row['succeeded']} | {row['failed_clearly']} | "
              f"{row['failed_unclearly']} | {row['lost']} | {row['duplicated']} | "
              f"{row.get('not_completed', 0)} | {row['slowest_s']} s |")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / "faults.json").write_text(json.dumps(
        {"date": datetime.datetime.now().isoformat(timespec="seconds"), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
