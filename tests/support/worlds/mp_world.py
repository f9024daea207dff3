"""multiprocessing with the fork, spawn or forkserver start method, and the client made at
module level as scripts make it: a forked child inherits the parent's client (used before
the fork, so with open connections and a CSRF token), a spawned or forkserver child makes
its own on import. The parent runs lifecycles while 3 children run 4 each and read runs
the others made. Usage: ``mp_world.py fork|spawn|forkserver``; env PREFECT_API_URL,
WORLD_TAG."""

import multiprocessing
import os
import sys
from typing import Any, Dict, List, Tuple

from world import Tally, watch_warnings

from orchestration_client import get_client

TAG = os.environ["WORLD_TAG"]
client = get_client()
logged = watch_warnings()


def child_work(index: int) -> Dict[str, Any]:
    tally = Tally()
    for round_ in range(2):
        tally.run(client, TAG, f"child-{index}-{round_}")
    return {"pid": os.getpid(), "runs": tally.runs, "right": tally.right,
            "problems": tally.problems + logged.seen,
            "made": [(str(run_id), name) for run_id, name in tally.made]}  # fmt: skip


def child_read(job: Tuple[str, str]) -> Dict[str, Any]:
    import uuid

    tally = Tally()
    tally.made = [(uuid.UUID(job[0]), job[1])]
    tally.read(client, "child-read")
    return {"pid": os.getpid(), "reads_right": tally.reads_right,
            "problems": tally.problems + logged.seen}  # fmt: skip


def main(method: str) -> None:
    tally = Tally()
    tally.run(client, TAG, "parent-before")  # connections and a CSRF token before the start
    context = multiprocessing.get_context(method)
    with context.Pool(3) as pool:
        pending = pool.map_async(child_work, range(6))
        for index in range(4):  # the parent keeps calling while the children do
            tally.run(client, TAG, f"parent-{index}")
        outcomes: List[Dict[str, Any]] = pending.get(timeout=120)
        for outcome in outcomes:
            tally.runs += outcome["runs"]
            tally.right += outcome["right"]
            tally.problems += outcome["problems"]
        made = [run for outcome in outcomes for run in outcome["made"]]
        reads = pool.map_async(child_read, made * 3).get(timeout=120)
        tally.reads += len(made) * 3
        for outcome in reads:
            tally.reads_right += outcome["reads_right"]
            tally.problems += outcome["problems"]
        children = {outcome["pid"] for outcome in outcomes + reads}
    tally.info["children"] = len(children)
    tally.expect(os.getpid() not in children, "a child reported the parent's pid")
    tally.made = []
    tally.report(logged)


if __name__ == "__main__":
    main(sys.argv[1])
