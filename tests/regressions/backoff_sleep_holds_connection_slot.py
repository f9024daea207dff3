"""A caller sleeping between retries after a broken connection kept its connection slot for
the whole back-off: urllib3 calls the retry policy's sleep() inside urlopen's except block,
before its finally closes the connection and hands the slot back. So 16 callers riding out
resets (or a server restart) blocked every other caller of the client, which then failed
after the connect timeout with APITimeoutError "not sent: no free connection ...; all 16
connections ... stayed in use" while the server was up and no connection was in use.

Found by an adversarial review of issue 20 (.repros/backoff_sleep_holds_connection_slot.py).

Here, against a stub on 127.0.0.1 with the default cap (16):
1. 16 threads each get their request reset after the server read it (they retry about 2 s
   later); 0.4 s in, another call, with a 1 s connect timeout, must be answered at once;
2. the same with 16 threads answered 503 with Retry-After: 1.5 (that wait was already
   made after the reply was read and its connection handed back; kept so it stays so).
Exit status 1 while the call fails, 0 once it is answered. About 6 s.
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
os.environ.pop("ORCHESTRATION_CLIENT_MAX_CONNECTIONS", None)  # the default cap, 16

from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import APITimeoutError

seen = set()
seen_lock = threading.Lock()


def handler(conn, method, path, headers, body, state):
    with seen_lock:
        first = path not in seen
        seen.add(path)
    if "/reset/" in path and first:  # reset after reading the request
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False
    if "/busy/" in path and first:
        conn.sendall(reply(503, b"{}", headers=["Retry-After: 1.5"], reason="Busy"))
        return True
    conn.sendall(reply(200, b'"3.9.1"'))
    return True


def while_16_wait(client, kind):
    """Whether a call is answered at once while 16 callers wait before their retry."""
    riders = [threading.Thread(target=client._transport.request, args=("GET", f"/{kind}/{i}"))
              for i in range(16)]
    for rider in riders:
        rider.start()
    time.sleep(0.4)  # all 16 are now waiting before their retry
    started = time.monotonic()
    try:
        client.api_version()
        print(f"{kind}: answered after {time.monotonic() - started:.2f} s while 16 callers "
              "waited before a retry")
        ok = True
    except APITimeoutError as exc:
        print(f"{kind}: DEFECT after {time.monotonic() - started:.2f} s, while the server was "
              f"up and every connection idle or closed: {exc}")
        ok = False
    for rider in riders:
        rider.join(30)
    return ok


stub = Stub(handler)
try:
    client = SyncPrefectClient(stub.url, httpx_settings={"timeout": (1.0, 10.0)})
    client.api_version()  # the server has answered: resets now get the full back-off
    results = [while_16_wait(client, "reset"), while_16_wait(client, "busy")]
finally:
    stub.stop()
sys.exit(0 if all(results) else 1)
