"""Fork while other threads are mid-call (gunicorn --preload with threads, Celery, or
multiprocessing from a threaded app). The child drops pools and the CSRF token, but keeps
the requests Session's cookie jar, whose RLock a parent thread may hold at the fork
(requests takes it on every reply: extract_cookies_to_jar). The child's first call then
blocks forever, whatever the timeout. Expected: every call in the child ends within its
timeout. Prints FAIL and exits 1 if any child hung."""
import os, sys, signal, threading, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from support.regression_stub import Stub, reply
import orchestration_client

# a load balancer with sticky sessions sets a cookie on every reply (AWS ALB: AWSALB=...)
COOKIES = [f"Set-Cookie: AWSALB{i}={'x' * 2000}; Path=/" for i in range(40)]
def handler(conn, method, path, headers, body, state):
    conn.sendall(reply(200, "Hello!", headers=COOKIES))
    return True

stub = Stub(handler)
os.environ["PREFECT_API_REQUEST_TIMEOUT"] = "2"
client = orchestration_client.SyncPrefectClient(stub.url)
client.hello()
stop = False
def hammer():
    while not stop:
        try:
            client.hello()
        except Exception:
            pass
threads = [threading.Thread(target=hammer, daemon=True) for _ in range(3)]
for t in threads:
    t.start()
hung = ok = 0
deadline = time.monotonic() + 60
tries = 0
while time.monotonic() < deadline and hung == 0 and tries < 300:
    tries += 1
    pid = os.fork()
    if pid == 0:
        import faulthandler; faulthandler.dump_traceback_later(4.5, exit=False)
        signal.alarm(5)  # SIGALRM kills the child if the call never returns
        try:
            client.hello()
            os._exit(0)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGALRM:
        hung += 1
    else:
        ok += 1
stop = True
stub.stop()
print(f"forks: {tries}, children that returned: {ok}, children hung > 5 s (timeout 2 s): {hung}")
if hung:
    print("FAIL: a forked child's call hung on a lock a parent thread held at fork time")
    sys.exit(1)
print("no hang observed")
