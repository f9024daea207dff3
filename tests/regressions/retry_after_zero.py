"""Retry-After: 0 (or a past date, or a negative value, all parsed to 0) is ignored and the
exponential back-off (2 s, 4 s, ...) is used; Prefect's client retries at once. The docs
say Retry-After is honoured, "matching Prefect's client". Expected: two 503 Retry-After: 0
replies then 200 take well under 1 s; actual about 6 s."""
import sys, time, os
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from support.regression_stub import Stub, reply
import orchestration_client

def handler(conn, method, path, headers, body, state):
    state["n"] = state.get("n", 0) + 1
    if state["n"] <= 2:
        conn.sendall(reply(503, "busy", headers=["Retry-After: 0"]))
    else:
        conn.sendall(reply(200, "Hello!"))
    return True

stub = Stub(handler)
try:
    c = orchestration_client.SyncPrefectClient(stub.url)
    t = time.monotonic()
    c.hello()
    took = time.monotonic() - t
    print(f"two 'Retry-After: 0' 503s then 200 took {took:.2f} s")
    if took > 1.0:
        print("FAIL: Retry-After: 0 ignored; exponential back-off used instead")
        sys.exit(1)
finally:
    stub.stop()
