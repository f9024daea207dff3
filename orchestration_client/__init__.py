"""A pure-sync, minimal client for the Prefect 3 REST API's task runs.

    from orchestration_client import get_client
    from orchestration_client.schemas import Task
    from orchestration_client.states import Running, Completed

    with get_client() as client:
        run = client.create_task_run(Task(name="load"), flow_run_id=None, dynamic_key="0")
        client.set_task_run_state(run.id, Running())
        client.set_task_run_state(run.id, Completed())

One client may be shared by many threads: its session is only read after construction, the
connection pool is thread-safe, and the CSRF token is guarded by a lock.

The package logger ``orchestration_client`` has a ``NullHandler``: configure logging in
your application to see retries (DEBUG) and server start/stop (INFO).
"""

import logging

from ._client import SyncPrefectClient
from ._get_client import get_client
from ._version import __version__

__all__ = ["SyncPrefectClient", "__version__", "get_client"]

logging.getLogger("orchestration_client").addHandler(logging.NullHandler())
