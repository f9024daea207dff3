"""What every world script shares: one task-run lifecycle checked end to end, a record of
WARNINGs logged by urllib3 and this package, and the report the test reads.

A world script prints, as its last line, ``WORLD {json}``: ``runs`` (lifecycles tried),
``right`` (lifecycles whose every reply was the right one), ``reads`` and ``reads_right``
(reads of runs made earlier, each checked to be that run: the cheap way to put many
callers in flight at once, since a SQLite server serialises writes), ``problems`` (anything
wrong, each naming where), and ``info`` (what the test checks besides).
"""

import json
import logging
import os
import random
import sys
import threading
import uuid
from typing import Any, Dict, List, Optional, Tuple

from orchestration_client import SyncPrefectClient
from orchestration_client.schemas import Task
from orchestration_client.states import Completed, Running

#: A task run id no server has; the fault proxy holds replies to requests naming it.
SLOW_ID = "00000000-0000-4000-8000-0000000de1a7"


class Warnings(logging.Handler):
    """Keeps every WARNING (or worse) logged by orchestration_client and urllib3's pool-full
    ones; counts urllib3's "Retrying ..." WARNINGs apart (a retry after the server closed a
    keep-alive connection just as it was reused is normal, and this server does that under
    load)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: List[str] = []
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.name.startswith("urllib3") and message.startswith("Retrying"):
            self.retries += 1
        elif record.name.split(".")[0] in ("urllib3", "orchestration_client"):
            self.seen.append(f"{record.name} {record.levelname}: {message}")


def watch_warnings() -> Warnings:
    """As an application that calls ``logging.basicConfig()`` would see them."""
    logging.basicConfig(level=logging.WARNING)
    handler = Warnings()
    logging.getLogger().addHandler(handler)
    return handler


Run = Tuple[uuid.UUID, str]  # a run made by a lifecycle: its id and name


def lifecycle(
    client: SyncPrefectClient, tag: str, label: str, made: Optional[List[Run]] = None
) -> Optional[str]:
    """Create a run, move it to Running and Completed, read it back: None if every reply
    was the answer to its own request (names, ids, states, run_count 1), else the problem.
    The run is added to ``made``."""
    name = f"{tag}-{label}-{uuid.uuid4().hex[:8]}"
    try:
        run = client.create_task_run(Task(name="world", tags=[tag]), None, name, name=name)
        if run.name != name or run.dynamic_key != name:
            return f"{label}: created {name}, got {run.name} / {run.dynamic_key}"
        for state in (Running(), Completed()):
            result = client.set_task_run_state(run.id, state)
            got = result.state
            if result.status.value != "ACCEPT" or got is None or got.type != state.type:
                return f"{label}: proposed {state.type.value}, got {result.status} {got}"
            if got.state_details.task_run_id != run.id:
                return f"{label}: {state.type.value} for {run.id} answered for {got.state_details.task_run_id}"
        read = client.read_task_run(run.id)
        if read.id != run.id or read.name != name:
            return f"{label}: read {run.id} ({name}), got {read.id} ({read.name})"
        if read.state_type is None or read.state_type.value != "COMPLETED" or read.run_count != 1:
            return f"{label}: read back {read.state_type} with run_count {read.run_count}"
    except BaseException as exc:  # a KeyboardInterrupt or Timeout copied from another caller too
        return f"{label}: {type(exc).__name__}: {exc}"
    if made is not None:
        made.append((run.id, name))
    return None


class Tally:
    """Lifecycles tried, lifecycles right, reads, and every problem; shared by threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs = 0
        self.right = 0
        self.reads = 0
        self.reads_right = 0
        self.made: List[Run] = []
        self.problems: List[str] = []
        self.info: Dict[str, Any] = {}

    def run(self, client: SyncPrefectClient, tag: str, label: str) -> None:
        made: List[Run] = []
        problem = lifecycle(client, tag, label, made)
        with self.lock:
            self.runs += 1
            self.made += made
            if problem is None:
                self.right += 1
            else:
                self.problems.append(problem)

    def read(self, client: SyncPrefectClient, label: str) -> None:
        """Read a run made earlier (at random) and check that the reply is that run."""
        with self.lock:
            run_id, name = random.choice(self.made)
        problem = None
        try:
            got = client.read_task_run(run_id)
            if got.id != run_id or got.name != name:
                problem = f"{label}: read {run_id} ({name}), got {got.id} ({got.name})"
        except Exception as exc:
            problem = f"{label}: read {run_id}: {type(exc).__name__}: {exc}"
        with self.lock:
            self.reads += 1
            if problem is None:
                self.reads_right += 1
            else:
                self.problems.append(problem)

    def made_as(self, label: str) -> int:
        """How many runs were made right by lifecycles whose label starts with ``label``."""
        with self.lock:
            return sum(1 for _, name in self.made if f"-{label}" in name)

    def expect(self, condition: bool, problem: str) -> None:
        if not condition:
            with self.lock:
                self.problems.append(problem)

    def report(self, warnings: Optional[Warnings] = None) -> None:
        if warnings is not None:
            self.problems += warnings.seen
            self.info["urllib3_retry_warnings"] = warnings.retries
        body = {"runs": self.runs, "right": self.right, "reads": self.reads,
                "reads_right": self.reads_right, "problems": self.problems,
                "info": self.info, "pid": os.getpid()}  # fmt: skip
        sys.stdout.write("WORLD " + json.dumps(body) + "\n")
        sys.stdout.flush()


def pools(client: SyncPrefectClient) -> List[Any]:
    """The connection pools the client's calls have used (one per API origin, normally)."""
    manager = client._transport._adapter.poolmanager
    return list(manager.pools._container.values())


def pool_state(client: SyncPrefectClient) -> Dict[str, Any]:
    """The connection pools' slots: how many are free and how many interrupted waits are
    still owed a hand-back (0 when the cap is exact), summed over the pools used."""
    used = pools(client)
    return {"pools": len(used), "free": sum(pool.pool.qsize() for pool in used),
            "owed": sum(getattr(pool.pool, "_owed", 0) for pool in used),
            "cap": len(used) * getattr(client._transport._adapter, "max_connections", 0)}  # fmt: skip


def say(line: str) -> None:
    """A line the test waits for (to send a signal at the right moment)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
