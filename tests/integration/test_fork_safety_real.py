"""A client made before ``os.fork()``, used by parent and children against a real Prefect
server: each process creates and reads its own task runs, and every reply must be the
answer to its own request."""

import multiprocessing
import os
import threading
import uuid
from typing import Any, List

import pytest
from support.forking import in_child, report

from orchestration_client import SyncPrefectClient
from orchestration_client.schemas import Task

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
]


def lifecycles(client: SyncPrefectClient, tag: str, count: int) -> List[str]:
    problems = []
    for index in range(count):
        name = f"{tag}-{os.getpid()}-{index}-{uuid.uuid4().hex[:6]}"
        try:
            created = client.create_task_run(Task(name="fork", tags=[tag]), None, name, name=name)
            read = client.read_task_run(created.id)
        except Exception as exc:
            problems.append(f"{type(exc).__name__}: {exc}")
            continue
        if created.name != name or created.dynamic_key != name:
            problems.append(f"created {name}, got {created.name}")
        if read.id != created.id or read.name != name:
            problems.append(f"read {created.id} ({name}), got {read.id} ({read.name})")
    return problems


def _worker(client: SyncPrefectClient, tag: str, queue: Any) -> None:
    queue.put(lifecycles(client, tag, 10))


def test_parent_and_forked_children_each_get_their_own_replies(api_url: str) -> None:
    tag = f"fork-{uuid.uuid4().hex[:8]}"
    client = SyncPrefectClient(api_url)
    warm = [threading.Thread(target=client.api_version) for _ in range(4)]
    for thread in warm:
        thread.start()
    for thread in warm:
        thread.join()
    children = [in_child(lambda: lifecycles(client, tag, 10)) for _ in range(2)]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_worker, args=(client, tag, queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    problems = lifecycles(client, tag, 10)
    for _ in workers:
        problems += queue.get(timeout=120)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    for child in children:
        problems += report(*child)
    assert problems == []
    from support.helpers import runs_tagged

    assert len(runs_tagged(client, tag)) == 10 * 5  # parent, two children, two workers
