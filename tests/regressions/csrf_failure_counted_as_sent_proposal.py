"""set_task_run_state took a failure to get the CSRF token for a failure of its proposal.
The token is fetched inside the proposal's send, before anything is sent, so:

A. a token endpoint slower than the read timeout ended in StateChangeOutcomeUnknown ("the
   server may still apply it") though no proposal had been sent;
B. a lasting 500 on the token endpoint was counted as the proposal's 500: the history was
   read and a second token fetch began with a fresh 500 time limit, 10 s in all with the
   limit at 4 s (about 42 s with the default 20 s);
C. a caller waiting for another caller's failed token fetch did the same.

Now the token's error is raised as it is (a PrefectHTTPStatusError for GET /csrf-token, or
an APITimeoutError saying the request was not sent), once, within the 500 limit, and no
proposal reaches the server. About 9 s."""
import os
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
os.environ["PREFECT_CLIENT_RETRY_JITTER_FACTOR"] = "0"
os.environ["ORCHESTRATION_CLIENT_RETRY_500_SECONDS"] = "4"
LIMIT = 4.0

from support.regression_stub import Stub, reply

from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import (
    APITimeoutError,
    PrefectHTTPStatusError,
    StateChangeOutcomeUnknown,
)
from orchestration_client.states import Running

mode = {"token": "hang"}
seen = {"proposals": 0, "tokens": 0}


def handler(conn, method, path, headers, body, state):
    if path.startswith("/api/csrf-token"):
        seen["tokens"] += 1
        if mode["token"] == "hang":
            time.sleep(3)  # longer than the client's 2 s read timeout
            return False
        conn.sendall(reply(500, {"exception_message": "Internal Server Error"}))
        return True
    if path.startswith("/api/task_run_states/"):
        conn.sendall(reply(200, []))  # nothing was applied: no proposal arrived
        return True
    if path.endswith("/set_state"):
        seen["proposals"] += 1
        conn.sendall(reply(403, {"detail": "Invalid CSRF token or client identifier."}))
        return True
    if method == "PATCH":
        conn.sendall(reply(403, {"detail": "Invalid CSRF token or client identifier."}))
        return True
    conn.sendall(reply(200, "3.9.1"))
    return True


def fresh_client():
    client = SyncPrefectClient(stub.url, httpx_settings={"timeout": 2.0})
    client.api_version()
    return client


failures = []
stub = Stub(handler)
try:
    # A: the token endpoint hangs
    try:
        fresh_client().set_task_run_state(uuid.uuid4(), Running())
        failures.append("A: returned")
    except StateChangeOutcomeUnknown as exc:
        failures.append(f"A: StateChangeOutcomeUnknown with {seen['proposals']} sent: {exc}")
    except APITimeoutError as exc:
        print(f"A: {type(exc).__name__}: {exc}")
        if "set_state was not sent" not in str(exc) or "CSRF token" not in str(exc):
            failures.append(f"A: the message does not say the proposal was not sent: {exc}")
    except Exception as exc:
        failures.append(f"A: {type(exc).__name__}: {exc}")

    # B: the token endpoint answers 500 for good
    mode["token"] = "500"
    seen["tokens"] = 0
    started = time.monotonic()
    try:
        fresh_client().set_task_run_state(uuid.uuid4(), Running())
        failures.append("B: returned")
    except Exception as exc:
        took = time.monotonic() - started
        print(f"B: {type(exc).__name__} after {took:.1f} s, {seen['tokens']} token requests: "
              f"{str(exc)[:150]}")
        if not (isinstance(exc, PrefectHTTPStatusError) and exc.status_code == 500
                and "/csrf-token" in exc.url):
            failures.append(f"B: not the token endpoint's 500: {type(exc).__name__}: {exc}")
        if took > LIMIT + 3:
            failures.append(f"B: took {took:.1f} s with the 500 limit at {LIMIT:g} s")

    # C: a caller that waited for another caller's token fetch
    seen["tokens"] = 0
    client = fresh_client()
    errors = {}

    def call(name, make):
        try:
            make()
            errors[name] = None
        except Exception as exc:
            errors[name] = exc

    leader = threading.Thread(target=call, args=(
        "rename", lambda: client.set_task_run_name(uuid.uuid4(), "x")))
    leader.start()
    while client._transport.csrf._flight is None and leader.is_alive():
        time.sleep(0.01)
    call("state", lambda: client.set_task_run_state(uuid.uuid4(), Running()))
    leader.join(30)
    print(f"C: {', '.join(f'{k}: {type(v).__name__}' for k, v in errors.items())}, "
          f"{seen['tokens']} token requests")
    if not isinstance(errors.get("state"), PrefectHTTPStatusError) or "/csrf-token" not in errors["state"].url:
        failures.append(f"C: the waiting set_task_run_state raised {errors.get('state')!r}")
finally:
    stub.stop()
if seen["proposals"]:
    failures.append(f"{seen['proposals']} proposals reached the server")
for failure in failures:
    print("FAIL:", failure[:400])
sys.exit(1 if failures else 0)
