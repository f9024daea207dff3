"""A Celery app as legacy code writes one: the client is made at import and used there once,
in the worker's main process, before the prefork pool forks its children. Filesystem broker
and file result backend under CELERY_FOLDER, so no service is needed. Env: PREFECT_API_URL,
WORLD_TAG, CELERY_FOLDER."""

import os
import uuid
from typing import Any, Dict

from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from world import SLOW_ID, Tally, watch_warnings

from orchestration_client import get_client

FOLDER = os.environ["CELERY_FOLDER"]
TAG = os.environ["WORLD_TAG"]


def make_app() -> Celery:
    """The app, for the worker and for the producer (which never imports this module's
    client)."""
    app = Celery("worlds", broker="filesystem://", backend=f"file://{FOLDER}/results")
    app.conf.broker_transport_options = {
        "data_folder_in": f"{FOLDER}/queue",
        "data_folder_out": f"{FOLDER}/queue",
        "processed_folder": f"{FOLDER}/processed",
        "control_folder": f"{FOLDER}/control",  # else it writes into the current directory
    }
    app.conf.worker_prefetch_multiplier = 1
    app.conf.broker_connection_retry_on_startup = True
    return app


app = make_app()
if os.environ.get("CELERY_ROLE") == "worker":
    client = get_client()
    logged = watch_warnings()
    at_import = Tally()
    at_import.run(client, TAG, "at-import")
    if at_import.problems:
        raise RuntimeError(f"the lifecycle at import failed: {at_import.problems}")


def outcome(tally: Tally, **more: Any) -> Dict[str, Any]:
    return {"pid": os.getpid(), "problems": tally.problems + logged.seen, "right": tally.right,
            "reads_right": tally.reads_right, "made": [[str(i), n] for i, n in tally.made],
            **more}  # fmt: skip


@app.task(name="lifecycle")
def lifecycle(label: str) -> Dict[str, Any]:
    tally = Tally()
    tally.run(client, TAG, label)
    return outcome(tally)


@app.task(name="read")
def read(run_id: str, name: str) -> Dict[str, Any]:
    tally = Tally()
    tally.made = [(uuid.UUID(run_id), name)]
    tally.read(client, "read")
    return outcome(tally)


@app.task(name="slow", soft_time_limit=1)
def slow() -> Dict[str, Any]:
    """A read the proxy holds 3 s, ended by the soft time limit in the middle of the call."""
    tally = Tally()
    try:
        client.read_task_run(SLOW_ID)
    except SoftTimeLimitExceeded:
        return outcome(tally, interrupted=True)
    return outcome(tally, interrupted=False)
