"""An HTTP error whose JSON body is nested a few hundred levels (well within what json.loads
accepts, so it becomes PrefectHTTPStatusError.detail) cannot be pickled: RecursionError.
A ProcessPoolExecutor worker raising it hands the parent a RecursionError, not the error.
Expected: every error round-trips through pickle with its message and status."""
import sys, pickle, os
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from concurrent.futures import ProcessPoolExecutor
from support.regression_stub import Stub, reply
import orchestration_client
from orchestration_client.exceptions import PrefectHTTPStatusError

def handler(conn, method, path, headers, body, state):
    conn.sendall(reply(422, b'{"detail": ' + b"[" * 600 + b"]" * 600 + b"}")); return True

def work(url):
    c = orchestration_client.SyncPrefectClient(url)
    c.hello()

if __name__ == "__main__":
    stub = Stub(handler)
    try:
        try:
            work(stub.url)
        except PrefectHTTPStatusError as exc:
            try:
                pickle.loads(pickle.dumps(exc))
                print("pickles")
            except RecursionError as e:
                print("FAIL: pickle.dumps(PrefectHTTPStatusError) ->", type(e).__name__, e)
        with ProcessPoolExecutor(1) as pool:
            try:
                pool.submit(work, stub.url).result()
            except PrefectHTTPStatusError as exc:
                print("ok: pool re-raised", exc.status_code)
                sys.exit(0)
            except BaseException as exc:
                print("FAIL: pool raised", type(exc).__name__, str(exc)[:120])
                sys.exit(1)
    finally:
        stub.stop()
