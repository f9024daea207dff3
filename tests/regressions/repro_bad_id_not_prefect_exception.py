"""Prefect-style error handling around a lookup by a user-supplied id:

    try: client.read_task_run(run_id)
    except ObjectNotFound: ...          # or: except PrefectException

With Prefect 3.9.1, read_task_run("not-a-uuid") reaches the server and raises ObjectNotFound
(404, a PrefectException). Ours raises a plain ValueError before sending: neither
ObjectNotFound, PrefectException nor even our own RequestValidationError, so the migrated
handler no longer catches it and the script crashes. Same for read_task_runs(offset=-1)
(Prefect: PrefectHTTPStatusError 422; ours: plain ValueError).
Set PREFECT_API_URL to a running server to also see Prefect's behaviour; the FAIL verdict
needs no server.
"""
import os, sys, warnings
warnings.simplefilter("ignore")
from orchestration_client import SyncPrefectClient
from orchestration_client.exceptions import PrefectException, ObjectNotFound, APIConnectionError

url = os.environ.get("PREFECT_API_URL", "http://127.0.0.1:9/api")
if "PREFECT_API_URL" in os.environ:
    from prefect.client.orchestration import get_client
    import prefect.exceptions as PE
    with get_client(sync_client=True) as pc:
        for call in (lambda: pc.read_task_run("not-a-uuid"), lambda: pc.read_task_runs(offset=-1)):
            try: call()
            except Exception as e: print("prefect raises", type(e).__name__, "PrefectException" if isinstance(e, PE.PrefectException) else "")
client = SyncPrefectClient(url, httpx_settings={"timeout": 1})
fails = 0
for label, call in [("read_task_run('not-a-uuid')", lambda: client.read_task_run("not-a-uuid")),
                    ("read_task_run_states('not-a-uuid')", lambda: client.read_task_run_states("not-a-uuid")),
                    ("read_task_runs(offset=-1)", lambda: client.read_task_runs(offset=-1))]:
    try:
        call()
        print("ok  ", label, "no error")
    except APIConnectionError:
        print("ok  ", label, "sent to the server (no server listening)")
    except PrefectException as exc:
        print("ok  ", label, "raised", type(exc).__name__)
    except Exception as exc:
        fails += 1
        print("FAIL", label, f"raised {type(exc).__module__}.{type(exc).__name__} (not a PrefectException): {exc}")
sys.exit(1 if fails else 0)
