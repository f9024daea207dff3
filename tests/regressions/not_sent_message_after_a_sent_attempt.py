"""APITimeoutError said "not sent" for a call whose earlier attempt was sent. When a retry
(after a 500, 502, 503, or a connection broken after the request went out) found no free
connection within the connect timeout, the transport reported urllib3's EmptyPoolError as
"POST .../task_runs/: not sent: no free connection within 0.5 s; ...", although the first
attempt reached the server and may have been committed. A caller trusting "not sent"
believes nothing was created; the exactly-once code (_calls/_exactly_once's
_may_have_been_sent) took the same error for "never left the client".

Found by an adversarial review of issue 20 (.repros/not_sent_message_after_a_sent_attempt.py).

Here: cap 1, connect timeout 0.5 s, no jitter. (1) POST /task_runs/ answers 500 with
Retry-After 0.3; (2) GET /reset/... is reset after the server read it (retried after 2 s).
While each caller waits before its retry, another thread takes the only connection. The error must not say "not
sent", must say what the earlier attempt got, and must count as "may have been sent".
Exit status 1 while it claims "not sent", 0 otherwise. About 6 s.
"""

import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from support.regression_stub import Stub, reply

os.environ["PREFECT_CLIENT_CSRF_SUPPORT_ENABLED"] = "false"
os.environ["ORCHESTRATION_CLIENT_MAX_CONNECTIONS"] = "1"
os.environ["PREFECT_CLIENT_RETRY_JITTER_FACTOR"] = "0"

from orchestration_client import SyncPrefectClient
from orchestration_client._calls._exactly_once import _may_have_been_sent
from orchestration_client.exceptions import APITimeoutError
from orchestration_client.schemas import Task

received = []


def handler(conn, method, path, headers, body, state):
    received.append(f"{method} {path}")
    if "/slow/" in path:
        time.sleep(float(path.rsplit("/", 1)[1]))
    elif method == "POST":  # committed; then the database connection died
        conn.sendall(reply(500, {"exception_message": "Internal Server Error"},
                           headers=["Retry-After: 0.3"], reason="Internal Server Error"))
        return True
    elif "/reset/" in path and len([r for r in received if "/reset/" in r]) == 1:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False
    conn.sendall(reply(200, b'"3.9.1"'))
    return True


def with_the_connection_taken(client, call, expect, hold):
    """``call`` while another thread takes the only connection for ``hold`` seconds, 0.1 s
    after the first attempt (the retry comes after 0.3 s, or 2 s after a reset)."""
    holder = threading.Thread(
        target=lambda: (time.sleep(0.1), client._transport.request("GET", f"/slow/{hold}")))
    holder.start()
    try:
        call()
        print(f"{expect}: returned; expected an APITimeoutError")
        return False
    except APITimeoutError as exc:
        message = str(exc)
        print(f"{expect}: {message}")
        ok = "not sent" not in message and expect in message and _may_have_been_sent(exc)
        if not ok:
            print(f"DEFECT: the error says 'not sent' (or is taken for it) for a request the "
                  f"server received: {received}")
        return ok
    finally:
        holder.join(10)


stub = Stub(handler)
try:
    client = SyncPrefectClient(stub.url, httpx_settings={"timeout": (0.5, 10.0)})
    client.api_version()
    results = [
        with_the_connection_taken(
            client,
            lambda: client.create_task_run(Task(name="t", task_key="k"), flow_run_id=None,
                                           dynamic_key="0"),
            "was answered 500", hold=1.5),
        with_the_connection_taken(
            client, lambda: client._transport.request("GET", "/reset/1"),
            "its connection broke", hold=3.5),
    ]
finally:
    stub.stop()
sys.exit(0 if all(results) else 1)
