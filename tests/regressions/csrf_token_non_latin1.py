"""A CSRF endpoint that returns a non-Latin-1 token (or one with CR/LF) makes every
mutating call raise a bare UnicodeEncodeError (outside the package's error tree), or an
APIConnectionError whose message echoes the CSRF token (a credential)."""
import os
import sys, uuid
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from support.regression_stub import Stub, reply
import orchestration_client
from orchestration_client.exceptions import OrchestrationClientError

TOKEN = {"v": "データ"}
def handler(conn, method, path, headers, body, state):
    if path.startswith("/api/csrf-token"):
        conn.sendall(reply(200, {"token": TOKEN["v"], "expiration": "2099-01-01T00:00:00Z"}))
    else:
        conn.sendall(reply(204))
    return True

stub = Stub(handler)
fail = False
try:
    for token in ("データ", "secret-token-123\r\nX-Evil: 1"):
        TOKEN["v"] = token
        client = orchestration_client.SyncPrefectClient(stub.url)
        try:
            client.set_task_run_name(uuid.uuid4(), "x")
            print("no error for", repr(token))
        except OrchestrationClientError as exc:
            if "secret-token-123" in str(exc):
                print("FAIL: CSRF token echoed in error message:", type(exc).__name__, str(exc)[:200])
                fail = True
            else:
                print("ok:", type(exc).__name__, exc)
        except Exception as exc:
            print(f"FAIL: {type(exc).__module__}.{type(exc).__name__} escapes the error tree: {exc}")
            fail = True
        client._transport.close()
finally:
    stub.stop()
sys.exit(1 if fail else 0)
