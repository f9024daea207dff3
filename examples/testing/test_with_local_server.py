"""Testing code that uses orchestration_client against a real, local Prefect server (the
`server` extra): slowest, but nothing is faked. With no PREFECT_API_URL, get_client()
starts a server for the test session in a temporary PREFECT_HOME and stops it at the end.
(Without the two os.environ lines, the tests use your shared local server instead: fast
from the second run on, but the test data lands in ~/.prefect.)

    pip install 'orchestration_client[server]' pytest
    python -m pytest examples/testing/test_with_local_server.py
"""

import os
import tempfile
import uuid
from typing import Iterator

import pytest
from pipeline import record_step

from orchestration_client import SyncPrefectClient, get_client


@pytest.fixture(scope="session")
def client() -> Iterator[SyncPrefectClient]:
    with tempfile.TemporaryDirectory() as home:
        os.environ.setdefault("PREFECT_HOME", home)  # keep test data out of ~/.prefect
        # A server of this process, stopped with the client: not the shared one, which
        # would outlive the temporary home.
        os.environ.setdefault("ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT", "0")
        with get_client() as session_client:  # local server, or PREFECT_API_URL if set
            yield session_client


def test_record_step_completes(client: SyncPrefectClient) -> None:
    assert record_step(client, "load", key=uuid.uuid4().hex, rows=3) == [
        "PENDING", "RUNNING", "COMPLETED"]


def test_record_step_fails_without_rows(client: SyncPrefectClient) -> None:
    assert record_step(client, "load", key=uuid.uuid4().hex, rows=-1) == [
        "PENDING", "RUNNING", "FAILED"]
