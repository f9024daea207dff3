"""Silently wrong data: pydantic's model_dump/model_dump_json take nested include/exclude
dicts, e.g. run.model_dump(mode="json", exclude={"state": {"data"}}) to store a run without
its result payload. Prefect drops only state.data; ours treats the dict as a set of top-level
names and drops the WHOLE state (and include={"state": {"type"}} keeps the whole state).
No error, no warning: the stored/logged record just lacks (or over-exposes) data.
"""
import datetime, sys, uuid, warnings
warnings.simplefilter("ignore")
from prefect.client.schemas.objects import TaskRun as PTaskRun
import prefect.states as PS
from orchestration_client.schemas import TaskRun as OTaskRun

ts = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
prun = PTaskRun(id=uuid.uuid4(), name="load", task_key="k", dynamic_key="0",
                state=PS.Completed(timestamp=ts, message="done", data={"rows": 3}))
orun = OTaskRun.model_validate(prun.model_dump())
fails = 0
for label, kwargs in [
    ("exclude={'state': {'data'}}", dict(mode="json", exclude={"state": {"data"}})),
    ("include={'id': True, 'state': {'type', 'name'}}", dict(mode="json", include={"id": True, "state": {"type", "name"}})),
    ("exclude={'state': {'state_details': {'transition_id'}}}", dict(mode="json", exclude={"state": {"state_details": {"transition_id"}}})),
]:
    expected = prun.model_dump(**kwargs)
    try:
        got = orun.model_dump(**kwargs)
    except Exception as exc:
        got = f"{type(exc).__name__}: {exc}"
    ok = got == expected
    fails += not ok
    print("ok  " if ok else "FAIL", label)
    if not ok:
        print("     prefect state:", expected.get("state") if isinstance(expected, dict) else expected)
        print("     ours    state:", got.get("state", "<missing>") if isinstance(got, dict) else got)
sys.exit(1 if fails else 0)
