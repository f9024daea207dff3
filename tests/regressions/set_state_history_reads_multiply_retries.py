"""set_task_run_state's history reads did not share the call's retry budget: each read of
the run's states, made after a failure that may have followed the commit, was a request with
its own full set of connection retries. A server that received the proposal, reset the
connection and went away (connection refused from then on) made the call sleep through the
budget once per retry of the call plus once more: 24 s at PREFECT_CLIENT_MAX_RETRIES=2
(waits 2 + 4 s), about 7 minutes by default instead of 62 s. The module's promise: sends and
reads share one budget of PREFECT_CLIENT_MAX_RETRIES retries.

Here PREFECT_CLIENT_MAX_RETRIES=2, no jitter: the call must end, with
StateChangeOutcomeUnknown (the proposal reached the server), after the budget's 6 s of
waits plus slack. About 6 s."""
import os
import socket
import struct
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
os.environ["PREFECT_CLIENT_CSRF_SUPPORT_ENABLED"] = "false"
os.environ["PREFECT_CLIENT_MAX_RETRIES"] = "2"
os.environ["PREFECT_CLIENT_RETRY_JITTER_FACTOR"] = "0"

from support.regression_stub import Stub, reply

from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import StateChangeOutcomeUnknown
from orchestration_client.states import Running

BUDGET_WAITS = 2 + 4
SLACK = 5
stub = None


def handler(conn, method, path, headers, body, state):
    if path.endswith("/set_state"):  # received the proposal, then the server is gone
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        stub.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept loop: refused from now on
        stub.stop()
        return False
    conn.sendall(reply(200, "3.9.1"))
    return True


stub = Stub(handler)
try:
    client = SyncPrefectClient(stub.url, httpx_settings={"timeout": (2.0, 5.0)})
    client.api_version()
    started = time.monotonic()
    try:
        client.set_task_run_state(uuid.uuid4(), Running())
        outcome = "returned"
    except StateChangeOutcomeUnknown:
        outcome = "StateChangeOutcomeUnknown"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    took = time.monotonic() - started
finally:
    stub.stop()
print(f"set_task_run_state: {outcome} after {took:.1f} s; PREFECT_CLIENT_MAX_RETRIES=2 allows "
      f"{BUDGET_WAITS} s of waits")
if outcome != "StateChangeOutcomeUnknown" or took > BUDGET_WAITS + SLACK:
    print("FAIL: the history reads spent retries of their own on top of the call's budget")
    sys.exit(1)
print("OK")
