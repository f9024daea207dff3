"""Testing code that uses orchestration_client by replaying a cassette (`vcrpy`): record
once against a real server, then replay with no server. Credentials are filtered out of
the cassette, and the random CSRF client id is ignored when matching.

    pip install vcrpy pytest
    PREFECT_API_URL=http://127.0.0.1:4200/api python -m pytest examples/testing/test_with_vcrpy.py
    python -m pytest examples/testing/test_with_vcrpy.py     # later runs replay the cassette
"""

import os

import vcr
from pipeline import record_step

from orchestration_client import SyncPrefectClient

# The URL the cassette was recorded against; replay needs the same one.
API = os.environ.get("PREFECT_API_URL", "http://127.0.0.1:4200/api")

recorder = vcr.VCR(
    cassette_library_dir=os.environ.get("CASSETTES", "cassettes"),
    record_mode=os.environ.get("VCR_RECORD_MODE", "once"),
    filter_headers=["authorization", "prefect-csrf-token"],  # and any custom secret header
    filter_query_parameters=["client"],  # the CSRF client id is random per client
    decode_compressed_response=True,
)


def test_record_step_against_a_recorded_server() -> None:
    with recorder.use_cassette("record_step.yaml"), SyncPrefectClient(API) as client:
        history = record_step(client, "load", key="cassette", rows=3)
    # A re-run against a live server finds the recorded run and appends to its history;
    # the cassette replays exactly the first recording.
    assert history[:3] == ["PENDING", "RUNNING", "COMPLETED"]
