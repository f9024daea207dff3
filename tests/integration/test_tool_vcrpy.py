"""vcrpy: record a cassette of the workflow against a real Prefect server, stop the server,
replay the cassette and get the same objects back. Credentials never reach the cassette
when vcrpy's standard filters are used as the README shows."""

import pathlib
from typing import Any, Callable

import pytest
import vcr
from support.tools_workflow import workflow

from orchestration_client import get_client
from orchestration_client.exceptions import OrchestrationClientError

pytestmark = pytest.mark.integration

SECRETS = ("pnu_cassette_key", "data-team-secret")


def recorder(cassette_dir: pathlib.Path, mode: str) -> Any:
    """The configuration the README recommends: credentials filtered out, and the CSRF
    ``client`` id (random per client) ignored when matching."""
    return vcr.VCR(
        cassette_library_dir=str(cassette_dir),
        record_mode=mode,
        filter_headers=["authorization", "prefect-csrf-token", "x-team-token"],
        filter_query_parameters=["client"],
        decode_compressed_response=True,
    )


def test_record_then_replay_with_the_server_stopped(
    start_server: Callable[..., Any], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server()
    monkeypatch.setenv("PREFECT_API_URL", server.api_url)
    monkeypatch.setenv("PREFECT_API_KEY", SECRETS[0])
    monkeypatch.setenv("PREFECT_CLIENT_CUSTOM_HEADERS", f'{{"X-Team-Token": "{SECRETS[1]}"}}')
    try:
        with recorder(tmp_path, "once").use_cassette("workflow.yaml"), get_client() as client:
            recorded = workflow(client)
    finally:
        server.stop()
    cassette = (tmp_path / "workflow.yaml").read_text()
    for secret in SECRETS:
        assert secret not in cassette, "a credential reached the cassette"
    assert "/api/task_runs/" in cassette and "set_state" in cassette

    with recorder(tmp_path, "none").use_cassette("workflow.yaml") as tape, get_client() as client:
        replayed = workflow(client)
        assert tape.all_played, "every recorded request was replayed"
    assert replayed == recorded

    # With the server gone and the cassette not covering a call, the user gets a clear error
    # from vcrpy or from us, never a hang.
    refused = (vcr.errors.CannotOverwriteExistingCassetteException, OrchestrationClientError)
    with recorder(tmp_path, "none").use_cassette("workflow.yaml"), get_client() as client, \
            pytest.raises(refused):
        client.read_task_run("00000000-0000-0000-0000-000000000001")
