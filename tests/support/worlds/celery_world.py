"""Celery with the prefork pool (2 children) and a filesystem broker: 12 lifecycle tasks,
40 reads of their runs (each child reads runs the other made), 2 tasks whose calls are ended
by the soft time limit mid-call, then 6 more lifecycles, which must all be right in the
children that were interrupted. Env: PREFECT_API_URL (a fault proxy holding SLOW_ID 3 s),
WORLD_TAG."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

folder = tempfile.mkdtemp(prefix="celery-world-")
for part in ("queue", "processed", "results", "control"):
    os.makedirs(os.path.join(folder, part))
os.environ["CELERY_FOLDER"] = folder

from celery_app import make_app  # noqa: E402
from world import Tally  # noqa: E402

producer = make_app()
worker = subprocess.Popen(
    [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "prefork",
     "--concurrency", "2", "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
     "--without-heartbeat"],
    env={**os.environ, "CELERY_ROLE": "worker"},
)  # fmt: skip
tally = Tally()
tally.runs = tally.right = 1  # the lifecycle at import, checked there (the worker exits if wrong)


def gather(results: List[Any], what: str) -> List[Dict[str, Any]]:
    out = []
    for result in results:
        try:
            out.append(result.get(timeout=120))
        except Exception as exc:
            tally.problems.append(f"{what}: {type(exc).__name__}: {exc}")
    return out


def count(outcomes: List[Dict[str, Any]], kind: str) -> None:
    for outcome in outcomes:
        tally.problems += outcome["problems"]
        if kind == "lifecycle":
            tally.right += outcome["right"]
            tally.made += [tuple(run) for run in outcome["made"]]
        else:
            tally.reads_right += outcome["reads_right"]


try:
    started = time.monotonic()
    first = [producer.send_task("lifecycle", args=[f"celery-{i}"]) for i in range(12)]
    tally.runs += 12
    done = gather(first, "lifecycle")
    tally.info["first_reply_seconds"] = round(time.monotonic() - started, 1)
    count(done, "lifecycle")
    if tally.made:
        reads = [producer.send_task("read", args=list(tally.made[i % len(tally.made)]))
                 for i in range(40)]  # fmt: skip
        tally.reads += 40
        count(gather(reads, "read"), "read")
    slow = gather([producer.send_task("slow") for _ in range(2)], "slow")
    tally.expect([o.get("interrupted") for o in slow] == [True, True],
                 f"soft time limits mid-call: {slow}")  # fmt: skip
    tally.info["interrupted_children"] = len({o["pid"] for o in slow})
    after = [producer.send_task("lifecycle", args=[f"celery-after-{i}"]) for i in range(6)]
    tally.runs += 6
    count(gather(after, "lifecycle after the time limits"), "lifecycle")
finally:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(10)
    shutil.rmtree(folder, ignore_errors=True)
tally.expect(worker.returncode == 0, f"the worker exited with {worker.returncode}")
tally.made = []
tally.report()
