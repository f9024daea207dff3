"""A 503 (or 502) from a proxy whose error page has a body the client cannot decode
(Content-Encoding: br, or gzip with trailing padding) is not retried: the body check runs
before the retry policy sees the status, so the call fails at once with ResponseDecodeError
("answered 503, but ..."), and set_task_run_state does not treat it as an ambiguous failure.
Prefect's client (httpx leaves unknown encodings as they are) retries the 503.
Expected: the 503 is retried and the following 200 returned."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from support.regression_stub import Stub, reply
import orchestration_client

def handler(conn, method, path, headers, body, state):
    state["n"] = state.get("n", 0) + 1
    if state["n"] == 1:
        page = b"\x1b\x0c\x00\xf8\xa5[Service Unavailable]"
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Encoding: br\r\nRetry-After: 0.1\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(page) + page)
    else:
        conn.sendall(reply(200, "Hello!"))
    return True

stub = Stub(handler)
try:
    c = orchestration_client.SyncPrefectClient(stub.url)
    try:
        r = c.hello()
        print("ok:", r.status_code, r.content)
    except Exception as exc:
        print("FAIL:", type(exc).__name__, str(exc)[:160], "| requests seen:", stub.state["n"])
        sys.exit(1)
finally:
    stub.stop()
