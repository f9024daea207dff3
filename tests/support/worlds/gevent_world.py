"""gevent: ``monkey.patch_all()`` before the client is imported (``first``), or after clients
were made and one was used (``after``, as a gunicorn ``--preload`` app with gevent workers
or a late-patching app does).

* token window: a greenlet's ``gevent.Timeout(1)`` ends it during the CSRF token fetch (the
  fault proxy holds that reply 3 s) while 3 greenlets wait for the same token: they must
  take over and finish their lifecycles;
* load, on one client (LOAD_API_URL: a plain relay, whose peak of open connections the
  test checks against the cap of 16): 12 lifecycles, 4 at a time, then 80 greenlets reading
  5 of those runs each, all at once;
* mid-call: 5 greenlets' ``gevent.Timeout(0.3)`` ends their reads (held 3 s) while 40
  greenlets read and 4 run lifecycles on the same client, which then runs 4 more and 40
  reads.

Usage: ``gevent_world.py first|after``; env LOAD_API_URL, FAULT_API_URL, WORLD_TAG.
"""

import sys

MODE = sys.argv[1]
if MODE == "first":
    from gevent import monkey

    monkey.patch_all()

import os  # noqa: E402
import threading  # noqa: E402
import warnings  # noqa: E402

from world import SLOW_ID, Tally, pool_state, watch_warnings  # noqa: E402

from orchestration_client import SyncPrefectClient  # noqa: E402
from orchestration_client.schemas import Task  # noqa: E402

TAG = os.environ["WORLD_TAG"]
tally = Tally()
logged = watch_warnings()

load = SyncPrefectClient(os.environ["LOAD_API_URL"])
faulty = SyncPrefectClient(os.environ["FAULT_API_URL"])
if MODE == "after":
    tally.run(load, TAG, "before-patch")  # pools and a CSRF token made with OS locks
    made_with = threading.Lock
    warnings.simplefilter("ignore")  # gevent warns that ssl was imported before patching
    from gevent import monkey

    monkey.patch_all()
    tally.expect(threading.Lock is not made_with, "patch_all did not patch threading")

import gevent  # noqa: E402

# ---- the token window ----------------------------------------------------------------------
leader_saw = []


def lead() -> None:
    try:
        with gevent.Timeout(1.0):
            # never sent: its token fetch outlasts the timeout (another tag, to be sure)
            faulty.create_task_run(Task(name="world", tags=[f"{TAG}-leader"]), None, "leader")
    except gevent.Timeout as exc:
        leader_saw.append(type(exc).__name__)
    except BaseException as exc:
        leader_saw.append(f"unexpected {type(exc).__name__}: {exc}")


def wait_then_run(index: int) -> None:
    gevent.sleep(0.2)  # the leader is in the token fetch by now
    tally.run(faulty, TAG, f"token-waiter-{index}")


leader = gevent.spawn(lead)
waiters = [gevent.spawn(wait_then_run, index) for index in range(3)]
gevent.joinall([leader, *waiters], timeout=60)
tally.expect(tally.made_as("token-waiter-") == 3, "not every token waiter took over")
tally.expect(leader_saw == ["Timeout"], f"the token leader saw {leader_saw}, not its Timeout")

# ---- load ------------------------------------------------------------------------------------
import gevent.pool  # noqa: E402

gevent.pool.Pool(4).map(lambda index: tally.run(load, TAG, f"load-{index}"), range(12))
readers = [gevent.spawn(lambda: [tally.read(load, "load") for _ in range(5)]) for _ in range(80)]
gevent.joinall(readers, timeout=120)

# ---- mid-call --------------------------------------------------------------------------------
timed_out = []


def slow_read() -> None:
    try:
        with gevent.Timeout(0.3):
            faulty.read_task_run(SLOW_ID)
    except gevent.Timeout:
        timed_out.append(True)
    except BaseException as exc:
        tally.problems.append(f"slow read: {type(exc).__name__}: {exc}")


jobs = [gevent.spawn(slow_read) for _ in range(5)]
jobs += [gevent.spawn(tally.read, faulty, "beside-timeouts") for _ in range(40)]
jobs += [gevent.spawn(tally.run, faulty, TAG, f"beside-timeouts-{index}") for index in range(4)]
gevent.joinall(jobs, timeout=120)
tally.expect(len(timed_out) == 5, f"{len(timed_out)} of 5 slow reads timed out")
jobs = [gevent.spawn(tally.run, faulty, TAG, f"after-timeouts-{index}") for index in range(4)]
jobs += [gevent.spawn(tally.read, faulty, "after-timeouts") for _ in range(40)]
gevent.joinall(jobs, timeout=120)
tally.info["pools"] = {"load": pool_state(load), "faulty": pool_state(faulty)}
tally.report(logged)
