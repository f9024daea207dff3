"""A proxy/load balancer answers 504 Gateway Timeout (or the read times out) after the server
committed the state change: the reply is lost exactly as with a 502 or a reset, but
set_task_run_state raises a plain PrefectHTTPStatusError 504 / APITimeoutError, neither
finding out (the history has the proposal's transition_id) nor saying the outcome is unknown.
A caller that retries on that error applies the transition twice.
Expected: ACCEPT (found in history) or StateChangeOutcomeUnknown."""
import sys, uuid, json, time, email.utils, os
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from support.regression_stub import Stub, reply
import orchestration_client
from orchestration_client.states import Running
from orchestration_client.exceptions import OrchestrationClientError

MODE = {"v": "504"}
history = []
def handler(conn, method, path, headers, body, state):
    if path.startswith("/api/csrf-token"):
        conn.sendall(reply(404)); return True
    if path.startswith("/api/task_run_states/"):
        conn.sendall(reply(200, history, headers=["Date: " + email.utils.formatdate(usegmt=True)])); return True
    if path.endswith("/set_state"):
        proposed = json.loads(body)["state"]
        st = dict(proposed, id=str(uuid.uuid4()), timestamp="2026-01-01T00:00:00Z")
        history.append(st)  # committed
        if MODE["v"] == "504":
            conn.sendall(reply(504, b"<html>Gateway Timeout</html>", reason="Gateway Timeout")); return True
        time.sleep(2.5); return False  # reply never comes
    conn.sendall(reply(404)); return True

stub = Stub(handler)
os.environ["PREFECT_API_REQUEST_TIMEOUT"] = "2"
fail = False
try:
    client = orchestration_client.SyncPrefectClient(stub.url)
    for mode in ("504", "timeout"):
        MODE["v"] = mode
        history.clear()
        try:
            r = client.set_task_run_state(uuid.uuid4(), Running())
            print(mode, "->", r.status)
        except OrchestrationClientError as exc:
            name = type(exc).__name__
            print(f"{mode} -> {name}: {str(exc)[:140]}")
            if name != "StateChangeOutcomeUnknown":
                fail = True
    if fail:
        print("FAIL: state change committed, reply lost, error does not say the outcome is unknown")
        sys.exit(1)
finally:
    stub.stop()
