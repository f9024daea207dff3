"""The shared local server's setting, files, locks and identity checks, without a server
(the behaviour against real servers: tests/integration/test_local_server.py)."""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import pytest

from orchestration_client import get_client
from orchestration_client._local_server import _files, _identity, _options, _shared


@pytest.mark.parametrize("raw, expected", [
    (None, 600.0), ("", 600.0), (" 900 ", 900.0), ("0", 0.0), ("0.5", 0.5), ("31536000", 31536000.0),
])
def test_idle_timeout_values(raw: "str | None", expected: float) -> None:
    env = {} if raw is None else {"ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT": raw}
    assert _options.idle_timeout(env) == expected


@pytest.mark.parametrize("raw", ["-1", "ten", "nan", "inf", "1e100", "10s"])
def test_a_bad_idle_timeout_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(ValueError, match=r"ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT must be a "
                                         r"number of seconds from 0 .* got '" + raw):
        _options.idle_timeout({"ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT": raw})


def test_get_client_refuses_a_bad_idle_timeout_before_starting_anything(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_ENABLED", "true")
    monkeypatch.setenv("ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT", "-5")
    with pytest.raises(ValueError, match=r"ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT .*no PREFECT_API_URL"):
        get_client()
    assert list(tmp_path.iterdir()) == []


def test_prefect_home(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    real = os.path.realpath
    assert _options.prefect_home({"HOME": "/h"}) == real(os.path.expanduser("~/.prefect"))
    assert _options.prefect_home({"PREFECT_HOME": "~/x"}) == real(os.path.expanduser("~/x"))
    monkeypatch.chdir(tmp_path)
    assert _options.prefect_home({"PREFECT_HOME": "rel"}) == real(tmp_path / "rel")
    (tmp_path / "link").symlink_to(tmp_path / "rel", target_is_directory=True)
    assert _options.prefect_home({"PREFECT_HOME": str(tmp_path / "link")}) == real(tmp_path / "rel")


def test_installed_prefect_version_matches_its_metadata() -> None:
    import importlib.util
    from importlib.metadata import version

    expected = version("prefect") if importlib.util.find_spec("prefect") else None
    assert _options.installed_prefect_version() == expected


def test_the_stop_command_names_a_home_from_the_environment() -> None:
    assert _shared.stop_command({}) == "python -m orchestration_client server stop"
    assert _shared.stop_command({"PREFECT_HOME": "/a b"}) == (
        "PREFECT_HOME='/a b' python -m orchestration_client server stop")


# ---- files ---------------------------------------------------------------------------------------


def record(**changes: object) -> str:
    value = {"format": 1, "id": "abc", "url": "http://127.0.0.1:4321/api", "port": 4321,
             "pid": 12, "prefect_version": "3.9.1", "idle_timeout": 600.0,
             "started_at": 1.0, "python": "/usr/bin/python3"}
    value.update(changes)
    return json.dumps(value)


def test_a_record_is_believed_only_when_well_formed_and_private(tmp_path: pathlib.Path) -> None:
    where = _files.paths(str(tmp_path))
    assert _files.private_directory(where.directory, create=True)
    _files.write_private(where.record, record())
    found = _files.read_record(where)
    assert found is not None and found.port == 4321 and found.pid == 12
    for bad in [record(url="http://10.0.0.1:4321/api"), record(url="http://127.0.0.1:1/api"),
                record(port="4321"), record(pid=0), record(format=2), record(idle_timeout="x"),
                "{not json", "[]", json.dumps({"format": 1})]:
        _files.write_private(where.record, bad)
        assert _files.read_record(where) is None, bad
    _files.write_private(where.record, record())
    os.chmod(where.record, 0o644)
    assert _files.read_record(where) is None, "a record others could have written is ignored"


def test_a_credential_is_read_only_for_its_server_and_only_if_private(tmp_path: pathlib.Path) -> None:
    where = _files.paths(str(tmp_path))
    _files.private_directory(where.directory, create=True)
    assert _files.read_credential(where, "abc") is None
    _files.write_private(where.credential, json.dumps({"id": "abc", "auth_string": "local:s"}))
    assert os.stat(where.credential).st_mode & 0o777 == 0o600
    assert _files.read_credential(where, "abc") == "local:s"
    assert _files.read_credential(where, "other") is None
    os.chmod(where.credential, 0o640)
    assert _files.read_credential(where, "abc") is None


def test_remove_if_ours_keeps_another_servers_files(tmp_path: pathlib.Path) -> None:
    where = _files.paths(str(tmp_path))
    _files.private_directory(where.directory, create=True)
    _files.write_private(where.record, record(id="new"))
    _files.write_private(where.credential, json.dumps({"id": "new", "auth_string": "x"}))
    _files.remove_if_ours(where, "old")
    assert os.path.exists(where.record) and os.path.exists(where.credential)
    _files.remove_if_ours(where, "new")
    assert not os.path.exists(where.record) and not os.path.exists(where.credential)


def test_the_directory_is_private_and_must_be_ours(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = _files.paths(str(tmp_path / "new-home"))
    assert not _files.private_directory(where.directory, create=False)
    assert _files.private_directory(where.directory, create=True)
    assert os.stat(where.directory).st_mode & 0o777 == 0o700
    os.chmod(where.directory, 0o777)
    assert _files.private_directory(where.directory, create=False)
    assert os.stat(where.directory).st_mode & 0o777 == 0o700
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(where.directory).st_uid + 1)
    with pytest.raises(PermissionError, match="belongs to another user"):
        _files.private_directory(where.directory, create=True)
    monkeypatch.undo()
    plain = tmp_path / "plain" / _files.DIRECTORY
    plain.parent.mkdir()
    plain.write_text("")
    with pytest.raises(PermissionError, match="must be a directory"):
        _files.private_directory(str(plain), create=True)


def test_locks_exclude_each_other_and_wait_until_a_deadline(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "lock")
    first = _files.acquire(path, shared=True, deadline=None)
    second = _files.acquire(path, shared=True, deadline=None)
    assert first is not None and second is not None, "shared holds coexist"
    began = time.monotonic()
    assert _files.acquire(path, shared=False, deadline=began + 0.2) is None
    assert time.monotonic() - began >= 0.2
    os.close(first)
    os.close(second)
    exclusive = _files.acquire(path, shared=False, deadline=None)
    assert exclusive is not None
    assert _files.acquire(path, shared=True, deadline=None) is None
    os.close(exclusive)


def test_a_lock_dies_with_its_process(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "lock")
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
                               "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\n"
                               "time.sleep(600)\n", path], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    assert _files.acquire(path, shared=True, deadline=None) is None
    holder.kill()
    holder.wait()
    descriptor = _files.acquire(path, shared=False, deadline=time.monotonic() + 10)
    assert descriptor is not None
    os.close(descriptor)


# ---- identity ------------------------------------------------------------------------------------


def test_identity_of_processes_and_listening_sockets(tmp_path: pathlib.Path) -> None:
    assert _identity.running(os.getpid())
    assert not _identity.is_our_server(os.getpid(), str(tmp_path)), "not a server guard"
    with socket.socket() as mine:
        mine.bind(("127.0.0.1", 0))
        mine.listen(1)
        port = mine.getsockname()[1]
        assert _identity.owns_port(os.getpid(), port) is True
        assert _identity.owns_port(os.getppid(), port) is False
    assert _identity.owns_port(os.getpid(), port) is None, "nobody listens: the challenge decides"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    child.kill()
    child.wait()
    assert not _identity.running(child.pid)


def test_a_proof_is_bound_to_the_credential_the_port_and_the_nonce() -> None:
    base = _identity.proof("local:s", 4321, "ab" * 16)
    assert base == _identity.proof("local:s", 4321, "ab" * 16)
    assert len({base, _identity.proof("local:t", 4321, "ab" * 16),
                _identity.proof("local:s", 4322, "ab" * 16),
                _identity.proof("local:s", 4321, "cd" * 16)}) == 4
    assert "local:s" not in base


# ---- the command line and the notice without a server ----------------------------------------------


def run(args: "list[str]", home: pathlib.Path) -> "subprocess.CompletedProcess[str]":
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return subprocess.run([sys.executable, "-m", "orchestration_client", *args],
                          env={**env, "PREFECT_HOME": str(home)}, capture_output=True,
                          text=True, timeout=60)


def test_the_command_line_without_a_server(tmp_path: pathlib.Path) -> None:
    status = run(["server", "status"], tmp_path)
    assert status.returncode == 1
    assert status.stdout == f"no local Prefect server for PREFECT_HOME={tmp_path}\n"
    stop = run(["server", "stop"], tmp_path)
    assert stop.returncode == 0
    assert stop.stdout == f"no local Prefect server was running for PREFECT_HOME={tmp_path}\n"
    assert list(tmp_path.iterdir()) == [], "looking creates nothing"
    usage = run([], tmp_path)
    assert usage.returncode == 2 and "server" in usage.stderr
    zero = subprocess.run([sys.executable, "-m", "orchestration_client", "server", "start"],
                          env={**os.environ, "PREFECT_HOME": str(tmp_path),
                               "ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT": "0"},
                          capture_output=True, text=True, timeout=60)
    assert zero.returncode == 2 and "no shared server to start" in zero.stderr


def test_status_reports_a_stale_record(tmp_path: pathlib.Path) -> None:
    where = _files.paths(str(tmp_path))
    _files.private_directory(where.directory, create=True)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    _files.write_private(where.record, record(pid=child.pid))
    status = run(["server", "status"], tmp_path)
    assert status.returncode == 1 and f"(pid {child.pid}, recorded, has ended)" in status.stdout
    stop = run(["server", "stop"], tmp_path)
    assert stop.returncode == 0 and f"removed the record of pid {child.pid}" in stop.stdout
    assert not os.path.exists(where.record)


ANNOUNCE = """
import logging, sys
{setup}
from orchestration_client._local_server._notice import announce
announce("first; at A", key="A")
announce("first again; at A", key="A")
announce("second; at B", key="B")
"""


@pytest.mark.parametrize("setup, expected", [
    ("", "orchestration_client: first; at A\norchestration_client: second; at B\n"),
    ("logging.basicConfig(format='%(name)s %(message)s', stream=sys.stderr)",
     "orchestration_client.local_server first; at A\norchestration_client.local_server second; at B\n"),
    ("logging.getLogger('orchestration_client.local_server').setLevel(logging.ERROR)", ""),
    ("logging.getLogger('orchestration_client.local_server').disabled = True", ""),
    ("logging.disable(logging.WARNING)", ""),
    ("logging.getLogger('orchestration_client').addHandler(logging.FileHandler('/dev/null'))", ""),
])
def test_the_notice_once_per_key_on_stderr_unless_logging_says_otherwise(
    setup: str, expected: str
) -> None:
    done = subprocess.run([sys.executable, "-c", ANNOUNCE.format(setup=setup)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == expected
