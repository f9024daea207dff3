"""An interrupt delivered to the caller leading the CSRF token fetch at the edges of its
flight stranded every waiting caller for its whole budget (connect + read timeout: 120 s by
default), then failed it with APITimeoutError, instead of letting a waiter take over:

* at the call of _lead() (before its try), the published flight was never finished;
* at flight.done.set() in _lead's finally, the flight was cleared but its waiters were
  never woken.

A signal handler's exception (Ctrl-C, a SIGTERM handler's SystemExit, Celery's
SoftTimeLimitExceeded) can land between bytecodes of the main thread. Here a trace
function raises KeyboardInterrupt in the leader at each call, line and return of the CSRF
module in turn, with 3 other threads asking for a token meanwhile; each time every one of
them must get a token within 1.5 s (the fetch takes 0.05 s; their budget is 2 s). The same
through the client and a stub server: an interrupt entering _lead(). About 8 s.

One kind of place is left out: the line event of a ``with self._lock:`` block's normal exit,
where a raise skips the lock's release. No signal can land there on Python 3.11+ (the
release is one call, checked for signals after it); on 3.9 it can, between the block's last
bytecode and the release, as in every ``with lock:`` in Python code (threading's and
urllib3's pool's included), which this package cannot change. The exit of the flight's own
lock is kept in the sweep: the waiters must not depend on it."""
import datetime
import dis
import functools
import json
import linecache
import os
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

import requests
from support.regression_stub import Stub, reply

from orchestration_client import SyncPrefectClient
from orchestration_client._http import _csrf
from orchestration_client._http._transport import Transport

WAITERS = 3
BOUND = 1.5


def fetch(client_id, *progress):
    time.sleep(0.05)
    response = requests.Response()
    response.status_code = 200
    response.url = "http://prefect.test/api/csrf-token"
    response.request = requests.Request("GET", response.url).prepare()
    response._content = json.dumps(
        {"token": uuid.uuid4().hex, "expiration": "2999-01-01T00:00:00Z"}).encode()
    return response


def new_token():
    return _csrf.CsrfToken(True, fetch=fetch, check=Transport.raise_for_status,
                           timeout=(1.0, 1.0))


@functools.cache
def with_entries(code):
    """The offset of each ``with`` statement's entry in ``code``, by line."""
    entries, line = {}, None
    for instruction in dis.get_instructions(code):
        positions = getattr(instruction, "positions", None)  # 3.11+
        if positions is not None:
            line = positions.lineno
        elif instruction.starts_line is not None:
            line = instruction.starts_line
        if instruction.opname in ("SETUP_WITH", "BEFORE_WITH"):
            entries[line] = instruction.offset
    return entries


def leaves_the_client_lock(frame, event):
    """Whether this is the line event of a ``with self._lock:`` block's normal exit."""
    if event != "line" or "with self._lock" not in linecache.getline(
            frame.f_code.co_filename, frame.f_lineno):
        return False
    entry = with_entries(frame.f_code).get(frame.f_lineno)
    return entry is not None and frame.f_lasti > entry


def interrupt_at(target, token, go):
    """A trace function that counts the events in the CSRF module and raises
    KeyboardInterrupt at event number ``target`` (0: never), once the waiters (started
    when a flight has been published) are waiting for it."""
    seen = [0]

    def tracer(frame, event, arg):
        if frame.f_code.co_filename != _csrf.__file__:
            return None
        if leaves_the_client_lock(frame, event):
            return tracer
        seen[0] += 1
        if seen[0] == target:
            sys.settrace(None)
            frame.f_trace = None
            if token._flight is not None:
                go.set()
                time.sleep(0.1)  # the waiters are now waiting for this flight
            raise KeyboardInterrupt
        return tracer

    return tracer, seen


def run_case(target):
    token = new_token()
    go = threading.Event()
    results = []

    def waiter():
        go.wait(10)
        started = time.monotonic()
        try:
            token.headers()
            results.append(("ok", time.monotonic() - started))
        except BaseException as exc:  # whatever reached this caller
            results.append((f"{type(exc).__name__}: {exc}", time.monotonic() - started))

    threads = [threading.Thread(target=waiter, daemon=True) for _ in range(WAITERS)]
    for thread in threads:
        thread.start()
    tracer, seen = interrupt_at(target, token, go)
    sys.settrace(tracer)
    try:
        token.headers()
        leader = "token"
    except KeyboardInterrupt:
        leader = "KeyboardInterrupt"
    finally:
        sys.settrace(None)
    go.set()
    for thread in threads:
        thread.join(15)
    return leader, results, seen[0]


def sweep():
    leader, results, events = run_case(0)  # no interrupt: count the leader's events
    assert leader == "token" and [r for r, _ in results] == ["ok"] * WAITERS, results
    print(f"sweep: the leader's path runs {events} calls, lines and returns in _csrf")
    bad = []
    for target in range(1, events + 1):
        leader, results, _ = run_case(target)
        good = (leader == "KeyboardInterrupt" and len(results) == WAITERS
                and all(r == "ok" and took < BOUND for r, took in results))
        if not good:
            bad.append(target)
            print(f"  interrupt at event {target}: leader {leader}; waiters: "
                  + "; ".join(f"{r[:120]} after {took:.1f} s" for r, took in results))
            if len(bad) >= 3:
                print("  (stopping the sweep)")
                break
    return not bad


tokens = {}


def handler(conn, method, path, headers, body, state):
    if path.startswith("/api/csrf-token"):
        time.sleep(0.3)
        client = path.split("client=", 1)[1]
        token = tokens[client] = uuid.uuid4().hex
        expiration = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        conn.sendall(reply(200, {"token": token, "client": client,
                                 "expiration": expiration.isoformat()}))
    elif method == "PATCH":
        ok = tokens.get(headers.get("prefect-csrf-client")) == headers.get("prefect-csrf-token")
        conn.sendall(reply(204) if ok else reply(403, {"detail": "Invalid CSRF token"}))
    else:
        conn.sendall(reply(200, "3.9.1"))
    return True


def through_the_client():
    """The leader, renaming a run, is interrupted entering _lead(); 3 threads rename too."""
    stub = Stub(handler)
    try:
        client = SyncPrefectClient(stub.url, httpx_settings={"timeout": 1.0})
        client.api_version()
        lead = _csrf.CsrfToken._lead.__code__
        results = []

        def rename():
            while client._transport.csrf._flight is None:
                time.sleep(0.005)
            started = time.monotonic()
            try:
                client.set_task_run_name(uuid.uuid4(), "renamed")
                results.append(("ok", time.monotonic() - started))
            except Exception as exc:
                results.append((f"{type(exc).__name__}: {exc}", time.monotonic() - started))

        def tracer(frame, event, arg):
            if event == "call" and frame.f_code is lead:
                sys.settrace(None)
                time.sleep(0.1)  # the other threads are waiting for this flight
                raise KeyboardInterrupt
            return None

        threads = [threading.Thread(target=rename, daemon=True) for _ in range(WAITERS)]
        for thread in threads:
            thread.start()
        sys.settrace(tracer)
        try:
            client.set_task_run_name(uuid.uuid4(), "leader")
            print("client: the leader was not interrupted?!")
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        for thread in threads:
            thread.join(15)
    finally:
        stub.stop()
    for result, took in results:
        print(f"client: waiter {result[:150]} after {took:.1f} s")
    return len(results) == WAITERS and all(r == "ok" and t < BOUND for r, t in results)


swept = sweep()
direct = through_the_client()
if swept and direct:
    print("OK: wherever the leader was interrupted, the waiters took the fetch over")
    sys.exit(0)
print("FAIL: an interrupted leader stranded the waiting callers")
sys.exit(1)
