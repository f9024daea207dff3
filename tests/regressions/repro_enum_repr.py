"""Cosmetic but visible in logs/doctests/snapshot tests: Prefect's enums are AutoEnum with
repr 'StateType.COMPLETED'; ours use Enum's default "<StateType.COMPLETED: 'COMPLETED'>".
It also leaks into repr() of every model that holds one (TaskRun.state_type, filters, ...).
"""
import sys, warnings
warnings.simplefilter("ignore")
from prefect.client.schemas.objects import StateType as P
from prefect.client.schemas.sorting import TaskRunSort as PS
from prefect.client.schemas.filters import Operator as PO
from orchestration_client.schemas import StateType as O
from orchestration_client.sorting import TaskRunSort as OS
from orchestration_client.filters import Operator as OO
fails = 0
for p, o in [(P.COMPLETED, O.COMPLETED), (PS.EXPECTED_START_TIME_DESC, OS.EXPECTED_START_TIME_DESC), (PO.and_, OO.and_)]:
    ok = repr(p) == repr(o)
    fails += not ok
    print("ok  " if ok else "FAIL", f"repr: prefect {p!r}, ours {o!r}")
sys.exit(1 if fails else 0)
