"""Every new connection to a local server is checked before anything is sent on it (defects
10 and 11 of issue 17's review): the transport's ``check_new_connection`` hook, against a
stub server, and the shared server's check of who holds the port. Against real servers:
tests/integration/test_local_server.py."""

import os
import socket
import time
import uuid
from typing import List, Optional

import pytest
from support.stub_server import StubServer
from urllib3.exceptions import NewConnectionError

from orchestration_client import SyncPrefectClient
from orchestration_client._calls import _exactly_once
from orchestration_client._exceptions import causes
from orchestration_client._local_server import _files, _identity, _shared
from orchestration_client._settings._load import load_settings
from orchestration_client.exceptions import APIConnectionError
from orchestration_client.states import Running


class Check:
    """A ``check_new_connection`` that records what it was given and answers ``refuse``."""

    def __init__(self, refuse_before: Optional[str] = None, refuse_after: Optional[str] = None):
        self.refuse_before = refuse_before
        self.refuse_after = refuse_after
        self.seen: List[Optional[tuple]] = []  # type: ignore[type-arg]

    def __call__(self, sock: Optional[socket.socket]) -> Optional[str]:
        self.seen.append(None if sock is None else sock.getpeername()[:2])
        return self.refuse_before if sock is None else self.refuse_after


def client(url: str, check: Check) -> SyncPrefectClient:
    return SyncPrefectClient._from_settings(url, load_settings(), check_new_connection=check)


@pytest.fixture
def stub() -> "StubServer":
    server = StubServer()
    yield server
    server.stop()


def test_each_new_connection_is_checked_before_and_after_connecting(stub: StubServer) -> None:
    check = Check()
    with client(stub.api_url, check) as api:
        assert api.api_healthcheck() is None
        assert api.api_healthcheck() is None  # the same connection: not checked again
    port = int(stub.api_url.split(":")[2].split("/")[0])
    assert check.seen == [None, ("127.0.0.1", port)]
    assert len(stub.seen) == 2


def test_vcrpy_records_and_replays_a_checked_client(
    stub: StubServer, tmp_path: "os.PathLike[str]"
) -> None:
    """vcrpy wraps each connection and copies attributes set on it to the real one: a check
    installed by replacing ``conn.connect`` made every call recurse (round 2 of issue 17's
    review). The check needs no attribute of the connection replaced."""
    vcr = pytest.importorskip("vcr")
    tape = vcr.VCR(cassette_library_dir=str(tmp_path), filter_query_parameters=["client"])
    check = Check()
    with tape.use_cassette("local.yaml", record_mode="all"), client(stub.api_url, check) as api:
        assert api.api_healthcheck() is None
    assert check.seen[:1] == [None] and len(stub.seen) == 1
    with tape.use_cassette("local.yaml", record_mode="none"), client(stub.api_url, check) as api:
        assert api.api_healthcheck() is None
    assert len(stub.seen) == 1  # replayed: nothing reached the server


@pytest.mark.parametrize("before, after", [("gone before", None), (None, "gone after")])
def test_a_refused_connection_fails_at_once_and_sends_nothing(
    stub: StubServer, before: Optional[str], after: Optional[str]
) -> None:
    check = Check(before, after)
    began = time.monotonic()
    with client(stub.api_url, check) as api, pytest.raises(APIConnectionError) as raised:
        api.hello()
    assert time.monotonic() - began < 2, "not retried"
    assert str(raised.value).endswith(f": {before or after}")
    assert stub.seen == [], "nothing was sent"
    assert len(check.seen) == (1 if before else 2)
    assert any(isinstance(c, NewConnectionError) for c in causes(raised.value, through_cause=True))
    assert not _exactly_once._may_have_been_sent(raised.value)


def test_a_state_change_on_a_refused_connection_is_surely_not_applied(stub: StubServer) -> None:
    """Not ``StateChangeOutcomeUnknown``, and no wait: nothing reached any server."""
    began = time.monotonic()
    with client(stub.api_url, Check("gone")) as api, pytest.raises(APIConnectionError) as raised:
        api.set_task_run_state(uuid.uuid4(), Running())
    assert type(raised.value) is APIConnectionError and time.monotonic() - began < 2
    assert stub.seen == []


def test_the_shared_servers_check_knows_who_holds_the_port(tmp_path: "os.PathLike[str]") -> None:
    """After connecting, the listener must still be the recorded server's: a program of
    another process on that port is refused, naming it; before connecting, the recorded
    process must still be our server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        record = _files.Record(
            id="abc", url=f"http://127.0.0.1:{port}/api", port=port, pid=os.getppid(),
            prefect_version="3.9.1", idle_timeout=600.0, started_at=0.0, python="python",
            boot_id="", pid_namespace="", hostname="", settings={}, salt="",
        )  # fmt: skip
        server = _shared.SharedServer(record, "local:x", _shared._Hold(), str(tmp_path),
                                      None, None)  # fmt: skip
        with socket.create_connection(("127.0.0.1", port)) as sock:
            reason = server.check_connection(sock)
        assert reason is not None and reason.startswith(
            f"the program listening on 127.0.0.1:{port} is not the local Prefect server this "
            f"client was using (pid {os.getppid()}); nothing was sent to it."
        )
    reason = server.check_connection(None)
    assert reason is not None and "is no longer running" in reason
    assert not _identity.is_live_server(os.getppid(), str(tmp_path), "abc")


class CountingServer:
    """A stand-in for a local server's use by one client: ``stop()`` lets go once, as the
    real ones do (counted in ``stops`` and written to ``pipe``, so a forked child's can be
    seen); ``again()`` is the use by the next client."""

    api_url = "http://127.0.0.1:1/api"

    def __init__(self, pipe: int) -> None:
        self.pipe = pipe
        self.stops = 0
        self.released = False

    def stop(self) -> None:
        if not self.released:
            self.released = True
            self.stops += 1
            os.write(self.pipe, b"s")

    def again(self) -> "CountingServer":
        self.released = False
        return self

    def check_connection(self, sock: Optional[socket.socket]) -> Optional[str]:
        return None


def test_a_client_dropped_unclosed_lets_go_of_its_server_once_collected_but_not_in_a_fork() -> None:
    """Round 2 (dropped_client_keeps_server): a client dropped without ``with``/close()
    used to keep its server (the shared one's hold on ``clients.lock``) until its process
    ended. It lets go when collected; a forked child dropping its copy does not; ``with``
    still lets go at once. Against a real shared server: test_local_server.py."""
    import gc

    reader, writer = os.pipe()
    try:
        server = CountingServer(writer)
        made = SyncPrefectClient._from_settings(server.api_url, load_settings())
        made._adopt_server(server)  # type: ignore[arg-type]
        child = os.fork()
        if child == 0:  # the child drops its copy: the parent's server stays held
            del made
            gc.collect()
            os._exit(0)
        assert os.waitpid(child, 0)[1] == 0
        os.set_blocking(reader, False)
        with pytest.raises(BlockingIOError):
            os.read(reader, 10)
        assert server.stops == 0
        del made
        gc.collect()
        assert server.stops == 1
        closed = SyncPrefectClient._from_settings(server.api_url, load_settings())
        closed._adopt_server(server.again())  # type: ignore[arg-type]
        with closed:
            pass
        assert server.stops == 2
        del closed
        gc.collect()
        assert server.stops == 2
    finally:
        os.close(reader)
        os.close(writer)
