"""Importing the package pulls in nothing heavy: no event loop, no pydantic, no prefect.
(Not timed: the benchmark script measures speed.)"""

import subprocess
import sys

HEAVY = ("asyncio", "pydantic", "httpx", "anyio", "prefect", "uvicorn", "packaging")

PROBE = """
import sys
import orchestration_client, orchestration_client.filters, orchestration_client.states
import orchestration_client.schemas, orchestration_client.sorting, orchestration_client.exceptions
from orchestration_client import get_client, SyncPrefectClient
client = SyncPrefectClient("http://127.0.0.1:9/api")
print(",".join(sorted(name for name in sys.modules if name.split(".")[0] in {heavy!r})))
print(",".join(sorted(name for name in sys.modules if name.startswith("orchestration_client."))))
"""


def test_import_brings_no_heavy_modules() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE.format(heavy=set(HEAVY))],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == ""
    assert not [m for m in out[1].split(",") if m.startswith("orchestration_client._local_server")]
