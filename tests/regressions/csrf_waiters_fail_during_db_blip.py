"""Callers waiting for another caller's CSRF token fetch gave up after their own connect +
read timeout while that fetch was being answered and retried: during a database blip the
token endpoint answers 500, the leading caller rides it out (500s are retried for
ORCHESTRATION_CLIENT_RETRY_500_SECONDS) and succeeds, but every waiter failed with
APITimeoutError "... has not been answered" (it had been, with 500s). Issue 19: a database
outage of a few seconds costs the caller time, not an error.

A: timeout 2 s (a waiter used to give up after 4 s), token endpoint answering 500 for 5 s,
   4 threads renaming a run at once: all four must succeed (the leader's retries come 2 and
   6 s after the first 500).
B: what must still hold: a token endpoint that hangs fails the leader at its read timeout,
   and the waiters get that error at the same time, within their own connect + read
   timeout. About 10 s."""
import datetime
import os
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
os.environ["PREFECT_CLIENT_RETRY_JITTER_FACTOR"] = "0"

from support.regression_stub import Stub, reply

from orchestration_client import SyncPrefectClient

mode = {"token": "ok", "blip_ends": 0.0}
tokens = {}


def handler(conn, method, path, headers, body, state):
    if path.startswith("/api/csrf-token"):
        if mode["token"] == "hang":
            time.sleep(3.5)
            return False
        if time.monotonic() < mode["blip_ends"]:  # the database is restarting
            conn.sendall(reply(500, {"exception_message": "Internal Server Error"}))
            return True
        client = path.split("client=", 1)[1]
        token = tokens[client] = uuid.uuid4().hex
        expiration = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        conn.sendall(reply(200, {"token": token, "client": client,
                                 "expiration": expiration.isoformat()}))
        return True
    if method == "PATCH":
        if tokens.get(headers.get("prefect-csrf-client")) != headers.get("prefect-csrf-token"):
            conn.sendall(reply(403, {"detail": "Invalid CSRF token or client identifier."}))
        else:
            conn.sendall(reply(204))
        return True
    conn.sendall(reply(200, "3.9.1"))
    return True


def four_renames():
    client = SyncPrefectClient(stub.url, httpx_settings={"timeout": 2.0})
    client.api_version()
    results = []

    def rename():
        started = time.monotonic()
        try:
            client.set_task_run_name(uuid.uuid4(), "renamed")
            results.append(("ok", time.monotonic() - started, ""))
        except Exception as exc:
            results.append((type(exc).__name__, time.monotonic() - started, str(exc)))

    threads = [threading.Thread(target=rename) for _ in range(4)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join(60)
    for outcome, took, text in results:
        print(f"  {outcome} after {took:.1f} s {text[:160]}")
    return results


failures = []
stub = Stub(handler)
try:
    print("A: a 5 s blip")
    mode["blip_ends"] = time.monotonic() + 5
    results = four_renames()
    if [outcome for outcome, _, _ in results] != ["ok"] * 4:
        failures.append("A: a caller that waited for the token fetch failed during the blip")
    print("B: a hanging token endpoint")
    mode["token"] = "hang"
    results = four_renames()
    if len(results) != 4 or any(o != "APITimeoutError" or took > 4 + 1 for o, took, _ in results):
        failures.append("B: a caller waited longer than its own connect + read timeout, or "
                        "did not get the timeout")
finally:
    stub.stop()
for failure in failures:
    print("FAIL:", failure)
sys.exit(1 if failures else 0)
