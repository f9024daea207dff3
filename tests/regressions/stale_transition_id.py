"""set_task_run_state with a State read back from the server (it carries the transition_id
the server stored for it, e.g. a rollback to an earlier state with force=True). The first
POST's reply is lost (connection reset, the server did NOT apply it); the history read then
finds the OLD state with that transition_id and the client returns a fabricated ACCEPT,
without ever re-sending. Expected: the proposal is re-sent (or StateChangeOutcomeUnknown)."""
import os
import sys, uuid, socket, struct, json
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
import msgspec
from support.regression_stub import Stub, reply
import orchestration_client
from orchestration_client.states import Pending, Running

run_id = uuid.uuid4()
old_tid = uuid.uuid4()
pending = Pending()
pending.state_details.task_run_id = run_id
pending.state_details.transition_id = old_tid
running = Running()
running.state_details.task_run_id = run_id
running.state_details.transition_id = uuid.uuid4()
history = [msgspec.to_builtins(pending), msgspec.to_builtins(running)]

def handler(conn, method, path, headers, body, state):
    if path.startswith("/api/csrf-token"):
        conn.sendall(reply(404)); return True
    if path.startswith("/api/task_run_states/"):
        conn.sendall(reply(200, history, headers=["Date: " + __import__("email.utils").utils.formatdate(usegmt=True)]))
        return True
    if path.endswith("/set_state"):
        state.setdefault("posts", 0)
        state["posts"] += 1
        if state["posts"] == 1:  # lose the reply: reset the connection, apply nothing
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        proposed = json.loads(body)["state"]
        st = dict(proposed, id=str(uuid.uuid4()), timestamp="2026-01-01T00:00:00Z")
        conn.sendall(reply(201, {"state": st, "status": "ACCEPT", "details": {"type": "accept_details"}}))
        return True
    conn.sendall(reply(404)); return True

stub = Stub(handler)
try:
    client = orchestration_client.SyncPrefectClient(stub.url)
    client.hello  # noqa
    # the user rolls the run back to its first state, read from the server
    states = client.read_task_run_states(run_id)
    result = client.set_task_run_state(run_id, states[0], force=True)
    posts = stub.state.get("posts", 0)
    print("status:", result.status, "returned state id:", result.state.id, "POSTs received:", posts)
    if posts < 2 and str(result.status).endswith("ACCEPT"):
        print("FAIL: ACCEPT returned although the proposal was never applied "
              "(matched an older state that carries the same transition_id)")
        sys.exit(1)
    print("ok")
finally:
    stub.stop()
