"""eventlet: ``eventlet.monkey_patch()`` first, as eventlet requires.

* token window: a green thread's ``eventlet.Timeout(1)`` ends it during the CSRF token fetch
  (held 3 s by the fault proxy) while 3 others wait for the same token and must take over;
* load (LOAD_API_URL, a plain relay whose peak of open connections the test checks): 12
  lifecycles, 4 at a time, then 80 green threads reading 5 of those runs each at once;
* mid-call: 3 reads ended by ``eventlet.Timeout(0.3)`` (held 3 s) beside 20 reads and 3
  lifecycles; then 3 more lifecycles.

Env: LOAD_API_URL, FAULT_API_URL, WORLD_TAG.
"""

import warnings

warnings.simplefilter("ignore")  # eventlet announces its deprecation on import

import eventlet  # noqa: E402

eventlet.monkey_patch()

import os  # noqa: E402

from world import SLOW_ID, Tally, pool_state, watch_warnings  # noqa: E402

from orchestration_client import SyncPrefectClient  # noqa: E402
from orchestration_client.schemas import Task  # noqa: E402

TAG = os.environ["WORLD_TAG"]
tally = Tally()
logged = watch_warnings()
load = SyncPrefectClient(os.environ["LOAD_API_URL"])
faulty = SyncPrefectClient(os.environ["FAULT_API_URL"])

# ---- the token window ----------------------------------------------------------------------
leader_saw = []


def lead() -> None:
    try:
        with eventlet.Timeout(1.0):
            faulty.create_task_run(Task(name="world", tags=[f"{TAG}-leader"]), None, "leader")
    except eventlet.Timeout as exc:
        leader_saw.append(type(exc).__name__)
    except BaseException as exc:
        leader_saw.append(f"unexpected {type(exc).__name__}: {exc}")


def wait_then_run(index: int) -> None:
    eventlet.sleep(0.2)
    tally.run(faulty, TAG, f"token-waiter-{index}")


pool = eventlet.GreenPool(200)
pool.spawn(lead)
for index in range(3):
    pool.spawn(wait_then_run, index)
pool.waitall()
tally.expect(tally.made_as("token-waiter-") == 3, "not every token waiter took over")
tally.expect(leader_saw == ["Timeout"], f"the token leader saw {leader_saw}, not its Timeout")

# ---- load ------------------------------------------------------------------------------------
list(eventlet.GreenPool(4).imap(lambda index: tally.run(load, TAG, f"load-{index}"), range(12)))
for _ in range(80):
    pool.spawn(lambda: [tally.read(load, "load") for _ in range(5)])
pool.waitall()

# ---- mid-call --------------------------------------------------------------------------------
timed_out = []


def slow_read() -> None:
    try:
        with eventlet.Timeout(0.3):
            faulty.read_task_run(SLOW_ID)
    except eventlet.Timeout:
        timed_out.append(True)
    except BaseException as exc:
        tally.problems.append(f"slow read: {type(exc).__name__}: {exc}")


for _ in range(3):
    pool.spawn(slow_read)
for _ in range(20):
    pool.spawn(tally.read, faulty, "beside-timeouts")
for index in range(3):
    pool.spawn(tally.run, faulty, TAG, f"beside-timeouts-{index}")
pool.waitall()
tally.expect(len(timed_out) == 3, f"{len(timed_out)} of 3 slow reads timed out")
for index in range(3):
    pool.spawn(tally.run, faulty, TAG, f"after-timeouts-{index}")
pool.waitall()
tally.info["pools"] = {"load": pool_state(load), "faulty": pool_state(faulty)}
tally.report(logged)
