"""Ctrl-C: the test sends SIGINT each time this script prints ``READY <phase>``, while the
main thread is in a call on a client shared with other threads (at most 2 connections,
ORCHESTRATION_CLIENT_MAX_CONNECTIONS=2, so waits for a free one happen):

* token: the main thread leads the CSRF token fetch (the fault proxy holds it 4 s) while 3
  threads wait for the same token; they must take over and finish their lifecycles;
* call (3 times): the main thread is reading (held 4 s) while a thread runs lifecycles
  and reads beside it;
* wait (2 times): two threads hold both connections (reads held 4 s) and the main thread
  is waiting for one;

and then the same client runs 8 more lifecycles and 20 reads from 4 threads. The main
thread must see each KeyboardInterrupt, raised where it was (its traceback goes through the
token fetch, the socket read, or the wait for a connection), nothing else may see one, and
the pool must end whole (every slot back, none owed). Env: FAULT_API_URL, WORLD_TAG.
"""

import os
import threading
import time
import traceback
from typing import Callable, List

from world import SLOW_ID, Tally, pool_state, pools, say, watch_warnings

from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import ObjectNotFound
from orchestration_client.schemas import Task

TAG = os.environ["WORLD_TAG"]
tally = Tally()
logged = watch_warnings()
client = SyncPrefectClient(os.environ["FAULT_API_URL"])
csrf = client._transport.csrf
main_saw: List[str] = []


def announce(line: str, ready: Callable[[], bool] = lambda: True, settle: float = 0.6) -> None:
    """Print ``line`` (the test then sends SIGINT) once ``ready()`` holds, plus ``settle`` s."""

    def watch() -> None:
        deadline = time.monotonic() + 30
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(settle)
        say(line)

    threading.Thread(target=watch, daemon=True).start()


def interrupted(phase: str, call: Callable[[], object], where: str) -> None:
    """Make the call until a KeyboardInterrupt ends it (a call may end first on a loaded
    machine: a held read is answered 404, a holder's retry frees a connection for a
    moment), and note whether the interrupt came from inside function ``where``."""
    for _ in range(5):
        try:
            call()
        except KeyboardInterrupt as exc:
            names = [frame.name for frame in traceback.extract_tb(exc.__traceback__)]
            main_saw.append(phase if where in names else f"{phase}: interrupted in {names}")
            return
        except ObjectNotFound:
            pass  # the held read was answered before the signal came
    main_saw.append(f"{phase}: never interrupted")


# ---- token -----------------------------------------------------------------------------------
def token_waiter(index: int) -> None:
    while csrf._flight is None:
        time.sleep(0.01)
    time.sleep(0.1)
    tally.run(client, TAG, f"token-waiter-{index}")


waiters = [threading.Thread(target=token_waiter, args=(index,)) for index in range(3)]
for thread in waiters:
    thread.start()
announce("READY token", lambda: csrf._flight is not None)
interrupted("token", lambda: client.create_task_run(Task(name="world", tags=[f"{TAG}-leader"]),
                                                    None, "leader"), "_fetch_token")  # fmt: skip
for thread in waiters:
    thread.join(60)
tally.expect(tally.made_as("token-waiter-") == 3, "not every token waiter took over")

# ---- call ------------------------------------------------------------------------------------
stop_beside = threading.Event()


def beside() -> None:
    index = 0
    while not stop_beside.is_set():
        tally.run(client, TAG, f"beside-{index}")
        tally.read(client, "beside")
        index += 1


worker = threading.Thread(target=beside)
worker.start()
for round_ in range(3):
    announce(f"READY call-{round_}")
    interrupted("call", lambda: client.read_task_run(SLOW_ID), "readinto")
stop_beside.set()
worker.join(60)

# ---- wait ------------------------------------------------------------------------------------
held: List[str] = []


def hold() -> None:
    try:
        client.read_task_run(SLOW_ID)
    except ObjectNotFound:
        held.append("404")  # the proxy held it, then the server said: no such run
    except Exception as exc:
        held.append(f"{type(exc).__name__}: {exc}")


(pool,) = pools(client)
for round_ in range(2):
    holders = [threading.Thread(target=hold) for _ in range(2)]
    for thread in holders:
        thread.start()
    announce(f"READY wait-{round_}", lambda: pool.pool.qsize() == 0)
    run_id = tally.made[0][0]
    interrupted("wait", lambda: client.read_task_run(run_id), "_get_conn")  # noqa: B023
    for thread in holders:
        thread.join(60)
tally.expect(held == ["404"] * 4, f"the reads holding the connections ended with {held}")

# ---- after -----------------------------------------------------------------------------------


def after(index: int) -> None:
    for round_ in range(2):
        tally.run(client, TAG, f"after-{index}-{round_}")
    for _ in range(5):
        tally.read(client, "after")


threads = [threading.Thread(target=after, args=(index,)) for index in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(120)
expected = ["token", "call", "call", "call", "wait", "wait"]
tally.expect(main_saw == expected, f"the main thread saw {main_saw}, not {expected}")
tally.info["pools"] = {"client": pool_state(client)}
tally.info["beside"] = sum(1 for run in tally.made if "-beside-" in run[1])
tally.report(logged)
