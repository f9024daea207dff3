"""The docs: "a pid check on each call covers forks made outside Python's os.fork". But
Transport.request() reads the CSRF state (self.csrf.headers()) BEFORE send() does the pid
check, so a child forked without Python's fork hooks uses the parent's CsrfToken: while a
parent thread is fetching a token (slow token endpoint), the child's first mutating call
waits for the parent's fetch, which can never finish in the child, and fails with
APITimeoutError; it also shares the parent's CSRF client id and token.
Expected: the child's call succeeds (it fetches its own token)."""
import ctypes, os, sys, threading, time, uuid
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from support.regression_stub import Stub, reply
import orchestration_client

def handler(conn, method, path, headers, body, state):
    if path.startswith("/api/csrf-token"):
        state["fetches"] = state.get("fetches", 0) + 1
        if state["fetches"] == 1:
            time.sleep(1.2)  # the parent's token request is slow
        conn.sendall(reply(200, {"token": "t%d" % state["fetches"], "expiration": "2099-01-01T00:00:00Z"}))
        return True
    conn.sendall(reply(204)); return True

stub = Stub(handler)
os.environ["PREFECT_API_REQUEST_TIMEOUT"] = "1.5"
client = orchestration_client.SyncPrefectClient(stub.url)
client.hello()
t = threading.Thread(target=lambda: client.set_task_run_name(uuid.uuid4(), "parent"), daemon=True)
t.start()
time.sleep(0.3)  # the parent thread is now fetching the token
libc_fork = ctypes.PyDLL(None).fork  # a fork that bypasses os.register_at_fork (C code)
pid = libc_fork()
if pid == 0:
    try:
        client.set_task_run_name(uuid.uuid4(), "child")
        os._exit(0)
    except BaseException as exc:
        sys.stderr.write(f"child: {type(exc).__name__}: {exc}\n")
        os._exit(1)
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
t.join(10)
stub.stop()
if code != 0:
    print("FAIL: the child's call failed/hung on the parent's CSRF state (exit", code, ")")
    sys.exit(1)
print("ok")
