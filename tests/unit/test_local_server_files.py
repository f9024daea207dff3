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
    # In any case, the later spelling winning, as Prefect reads its home setting.
    assert _options.prefect_home({"prefect_home": "~/y"}) == real(os.path.expanduser("~/y"))
    both = {"PREFECT_HOME": "~/x", "Prefect_Home": "~/y"}
    assert _options.prefect_home(both) == real(os.path.expanduser("~/y"))
    monkeypatch.chdir(tmp_path)
    assert _options.prefect_home({"PREFECT_HOME": "rel"}) == real(tmp_path / "rel")
    (tmp_path / "link").symlink_to(tmp_path / "rel", target_is_directory=True)
    assert _options.prefect_home({"PREFECT_HOME": str(tmp_path / "link")}) == real(tmp_path / "rel")


def test_installed_prefect_version_matches_its_metadata() -> None:
    import importlib.util
    from importlib.metadata import version

    expected = version("prefect") if importlib.util.find_spec("prefect") else None
    assert _options.installed_prefect_version() == expected


def test_the_stop_command_names_a_home_from_the_environment_and_this_python(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Round 2 (notice_stop_command_and_data_claim): the command runs as printed where the
    script ran (cron's PATH has no ``python``, or another one): this interpreter, quoted."""
    monkeypatch.setattr(sys, "executable", "/opt/my venv/bin/python3")
    assert _shared.stop_command({}) == "'/opt/my venv/bin/python3' -m orchestration_client server stop"
    assert _shared.stop_command({"PREFECT_HOME": "/a b"}) == (
        "PREFECT_HOME='/a b' '/opt/my venv/bin/python3' -m orchestration_client server stop")


def test_the_notice_names_the_configured_database_without_its_url() -> None:
    """Round 2: "data in <PREFECT_HOME>" only when no setting puts the database elsewhere;
    else the setting is named, never its value (a URL may carry a password)."""
    from orchestration_client._local_server import data_place

    assert data_place("/h", {}) == "data in /h"
    assert data_place("/h", {"PREFECT_SERVER_LOGGING_LEVEL": "DEBUG"}) == "data in /h"
    secret = "postgresql+asyncpg://u:pw@db/prefect"
    for name in ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL",
                 "prefect_server_database_connection_url", "PREFECT_SERVER_DATABASE_HOST",
                 "PREFECT_API_DATABASE_NAME"):
        said = data_place("/h", {name: secret})
        assert said == f"data in the database {name.upper()} configures", said
        assert "pw" not in said and "/h" not in said


# ---- files ---------------------------------------------------------------------------------------


def record(**changes: object) -> str:
    value = {"format": 2, "id": "abc", "url": "http://127.0.0.1:4321/api", "port": 4321,
             "pid": 12, "prefect_version": "3.9.1", "idle_timeout": 600.0,
             "started_at": 1.0, "python": "/usr/bin/python3", "boot_id": "b", "pid_namespace": "p",
             "hostname": "h", "settings": {}, "salt": "s"}
    value.update(changes)
    return json.dumps(value)


def directory(home: pathlib.Path) -> _files.Directory:
    opened = _files.Directory.open(str(home), create=True)
    assert opened is not None
    return opened


def test_a_record_is_believed_only_when_well_formed_and_private(tmp_path: pathlib.Path) -> None:
    where = directory(tmp_path)
    where.write_private(_files.RECORD, record())
    found = where.read_record()
    assert found is not None and found.port == 4321 and found.pid == 12
    for bad in [record(url="http://10.0.0.1:4321/api"), record(url="http://127.0.0.1:1/api"),
                record(port="4321"), record(pid=0), record(format=1), record(idle_timeout="x"),
                record(settings=[]), record(settings={"A": 1}), "{not json", "[]",
                json.dumps({"format": 2})]:
        where.write_private(_files.RECORD, bad)
        assert where.read_record() is None, bad
    where.write_private(_files.RECORD, record())
    os.chmod(tmp_path / _files.DIRECTORY / _files.RECORD, 0o644)
    assert where.read_record() is None, "a record others could have written is ignored"


def test_a_credential_is_read_only_for_its_server_and_only_if_private(tmp_path: pathlib.Path) -> None:
    where = directory(tmp_path)
    assert where.read_credential("abc") is None
    where.write_private(_files.CREDENTIAL, json.dumps({"id": "abc", "auth_string": "local:s"}))
    path = tmp_path / _files.DIRECTORY / _files.CREDENTIAL
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert where.read_credential("abc") == "local:s"
    assert where.read_credential("other") is None
    os.chmod(path, 0o640)
    assert where.read_credential("abc") is None


def test_remove_if_ours_keeps_another_servers_files(tmp_path: pathlib.Path) -> None:
    where = directory(tmp_path)
    where.write_private(_files.RECORD, record(id="new"))
    where.write_private(_files.CREDENTIAL, json.dumps({"id": "new", "auth_string": "x"}))
    where.remove_if_ours("old")
    assert {p.name for p in (tmp_path / _files.DIRECTORY).iterdir()} == {"server.json", "credential"}
    where.remove_if_ours("new")
    assert list((tmp_path / _files.DIRECTORY).iterdir()) == []


def test_the_directory_is_private_and_must_be_ours(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "new-home"
    assert _files.Directory.open(str(home), create=False) is None
    assert not home.exists(), "looking creates nothing"
    directory(home).close()
    assert os.stat(home).st_mode & 0o777 == 0o700, "a PREFECT_HOME made here is private"
    path = home / _files.DIRECTORY
    assert os.stat(path).st_mode & 0o777 == 0o700
    os.chmod(path, 0o777)
    opened = _files.Directory.open(str(home), create=False)
    assert opened is not None
    opened.close()
    assert os.stat(path).st_mode & 0o777 == 0o700
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(path).st_uid + 1)
    with pytest.raises(PermissionError, match="belongs to another user"):
        _files.Directory.open(str(home), create=True)
    monkeypatch.undo()
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / _files.DIRECTORY).write_text("")
    with pytest.raises(PermissionError, match="must be a directory"):
        _files.Directory.open(str(plain), create=True)


def test_a_symbolic_link_is_never_followed(tmp_path: pathlib.Path) -> None:
    """Defect 1 (writable_home_symlink_clobber): nothing is read or written through a link,
    whether it stands for the directory or for a file in it."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / _files.DIRECTORY).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(PermissionError, match="not a symbolic link"):
        _files.Directory.open(str(linked), create=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    where = directory(tmp_path / "home")
    os.symlink(victim, tmp_path / "home" / _files.DIRECTORY / _files.LOG)
    os.symlink(victim, tmp_path / "home" / _files.DIRECTORY / _files.START_LOCK)
    with pytest.raises(PermissionError):
        where.lock(_files.START_LOCK, shared=False, deadline=None)
    log = where.open_log()  # the link is moved aside as the previous log; a new file is made
    os.write(log, b"server output")
    os.close(log)
    assert victim.read_text() == "precious"
    assert os.path.islink(tmp_path / "home" / _files.DIRECTORY / (_files.LOG + ".1"))
    os.symlink(victim, tmp_path / "home" / _files.DIRECTORY / _files.RECORD)
    assert where.read_record() is None


def test_every_file_goes_to_the_directory_that_was_checked(tmp_path: pathlib.Path) -> None:
    """Defect 1: the directory renamed away after it was opened and another put in its place
    (as anyone who may write PREFECT_HOME can do): writes still land in the checked one."""
    home = tmp_path / "home"
    where = directory(home)
    (home / _files.DIRECTORY).rename(home / "moved")
    (home / _files.DIRECTORY).mkdir(mode=0o700)
    where.write_private(_files.CREDENTIAL, json.dumps({"id": "abc", "auth_string": "local:s"}))
    lock = where.lock(_files.CLIENTS_LOCK, shared=True, deadline=None)
    assert lock is not None
    os.close(lock)
    assert sorted(p.name for p in (home / "moved").iterdir()) == ["clients.lock", "credential"]
    assert list((home / _files.DIRECTORY).iterdir()) == []
    assert where.read_credential("abc") == "local:s"


def test_a_home_everyone_may_write_is_refused(tmp_path: pathlib.Path) -> None:
    """Defect 1: in a PREFECT_HOME any user may write, they could plant the database (or
    swap the server's directory); the shared server refuses it, saying what to do."""
    home = tmp_path / "shared"
    home.mkdir()
    home.chmod(0o777)
    with pytest.raises(PermissionError, match=r"writable by every user.*chmod o-w .*PREFECT_API_URL"):
        _files.Directory.open(str(home), create=True)
    assert list(home.iterdir()) == []
    home.chmod(0o775)  # a group of one's own (user private groups) is fine
    directory(home).close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user or group")
def test_a_home_another_user_owns_or_a_shared_group_may_write_is_refused(
    tmp_path: pathlib.Path,
) -> None:
    """Round 2 (home_writable_by_group_or_owned_by_other): a PREFECT_HOME owned by another
    user, or writable by a group that is not the user's private group, lets someone else
    plant the database; refused, saying why and what to do. A group-writable home whose
    group is the user's private one (same name, no members: Debian's umask 002) is fine."""
    import grp
    import pwd

    me = pwd.getpwuid(os.geteuid()).pw_name
    others = [g for g in grp.getgrall() if g.gr_name != me and g.gr_gid != os.getegid()]
    assert others, "no other group on this machine"
    home = tmp_path / "theirs"
    home.mkdir()
    home.chmod(0o755)
    os.chown(home, 65534, -1)
    with pytest.raises(PermissionError, match=r"PREFECT_HOME \(.*theirs\) belongs to another "
                       r"user \(uid 65534\).*chown.*PREFECT_HOME.*PREFECT_API_URL"):
        _files.Directory.open(str(home), create=True)
    assert list(home.iterdir()) == []
    shared = tmp_path / "shared-group"
    shared.mkdir()
    shared.chmod(0o2770)
    os.chown(shared, os.geteuid(), others[0].gr_gid)
    with pytest.raises(PermissionError, match=r"PREFECT_HOME \(.*shared-group\) is writable "
                       rf"by the group {others[0].gr_name}.*chmod g-w .*PREFECT_API_URL"):
        _files.Directory.open(str(shared), create=True)
    assert list(shared.iterdir()) == []
    own = grp.getgrgid(os.getegid())
    if own.gr_name == me and not own.gr_mem:  # the user's private group: accepted
        os.chown(shared, os.geteuid(), own.gr_gid)
        directory(shared).close()
    shared.chmod(0o2750)  # not group-writable: any group is fine
    os.chown(shared, os.geteuid(), others[0].gr_gid)
    directory(shared).close()


def test_errors_say_where_and_what_to_do(tmp_path: pathlib.Path) -> None:
    """Defect 12 (read_only_home_error), without a read-only mount: a PREFECT_HOME below a
    plain file cannot be made."""
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError) as raised:
        _files.Directory.open(str(tmp_path / "file" / "home"), create=True)
    message = str(raised.value)
    assert f"could not create {tmp_path / 'file' / 'home'}" in message
    assert "PREFECT_HOME" in message and "PREFECT_API_URL" in message


def test_locks_exclude_each_other_and_wait_until_a_deadline(tmp_path: pathlib.Path) -> None:
    where = directory(tmp_path)
    first = where.lock("lock", shared=True, deadline=None)
    second = where.lock("lock", shared=True, deadline=None)
    assert first is not None and second is not None, "shared holds coexist"
    began = time.monotonic()
    assert where.lock("lock", shared=False, deadline=began + 0.2) is None
    assert time.monotonic() - began >= 0.2
    os.close(first)
    os.close(second)
    exclusive = where.lock("lock", shared=False, deadline=None)
    assert exclusive is not None
    assert where.lock("lock", shared=True, deadline=None) is None
    os.close(exclusive)


def test_a_lock_dies_with_its_process(tmp_path: pathlib.Path) -> None:
    where = directory(tmp_path)
    path = str(tmp_path / _files.DIRECTORY / "lock")
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
                               "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\n"
                               "time.sleep(600)\n", path], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    assert where.lock("lock", shared=True, deadline=None) is None
    holder.kill()
    holder.wait()
    descriptor = where.lock("lock", shared=False, deadline=time.monotonic() + 10)
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


def test_only_listeners_a_client_can_reach_count() -> None:
    """Defect 2 (other_address_listener_kills_server): another program listening on our port
    number at [::1], [::] (v6 only) or 127.0.0.2 receives nothing of ours and changes nothing;
    without our listener, one that could take connections to 127.0.0.1 (a wildcard) does."""
    with socket.socket() as mine:
        mine.bind(("127.0.0.1", 0))
        mine.listen(1)
        port = mine.getsockname()[1]
        others = subprocess.Popen([sys.executable, "-c", OTHER_ADDRESSES, str(port)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert others.stdout is not None and others.stdout.readline() == "listening\n"
            assert _identity.owns_port(os.getpid(), port) is True
        finally:
            others.kill()
            others.wait()
    with socket.socket() as wildcard:
        wildcard.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        wildcard.bind(("0.0.0.0", 0))
        wildcard.listen(1)
        assert _identity.owns_port(os.getppid(), wildcard.getsockname()[1]) is False


OTHER_ADDRESSES = """
import socket, sys, time
port = int(sys.argv[1])
six = socket.socket(socket.AF_INET6)  # [::1] is tests/integration/test_local_server.py's
six.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
six.bind(("::", port))
six.listen()
four = socket.socket()
four.bind(("127.0.0.2", port))
four.listen()
print("listening", flush=True)
time.sleep(60)
"""


def test_a_server_guard_is_recognised_by_its_directory_as_bytes(tmp_path: pathlib.Path) -> None:
    """Defect 8 (non_utf8_home_orphans): a directory that is not UTF-8 is compared as the
    bytes it is, so its server is found (and can be stopped)."""
    directory_name = os.path.join(str(tmp_path), "caf\udce9", _files.DIRECTORY)
    fake = tmp_path / _identity.GUARD_NAME
    fake.write_text("import time; time.sleep(60)\n")
    guard = subprocess.Popen([sys.executable, str(fake), "--shared",
                              *_identity.guard_arguments(directory_name, "abc")])
    try:
        deadline = time.monotonic() + 10
        while not _identity.is_our_server(guard.pid, directory_name, "abc"):
            assert time.monotonic() < deadline, "not recognised"
            time.sleep(0.05)
        assert not _identity.is_our_server(guard.pid, directory_name, "abd")
        assert not _identity.is_our_server(guard.pid, directory_name.replace("\udce9", "\ufffd"))
        assert guard.pid in _identity.servers_for(directory_name)
    finally:
        guard.kill()
        guard.wait()


def test_the_installed_version_is_read_again_after_an_upgrade(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-running process sees an upgrade of Prefect made while it runs (it would
    otherwise take the new server for another version, and replace it)."""
    (tmp_path / "prefect").mkdir()
    (tmp_path / "prefect" / "__init__.py").write_text("")
    (tmp_path / "prefect-3.8.0.dist-info").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "prefect", raising=False)
    assert _options.installed_prefect_version() == "3.8.0"
    (tmp_path / "prefect-3.8.0.dist-info").rename(tmp_path / "prefect-3.9.1.dist-info")
    assert _options.installed_prefect_version() == "3.9.1"


@pytest.mark.parametrize("version, than, expected", [
    ("3.9.1", "3.4.25", True), ("3.4.25", "3.9.1", False), ("3.10.0", "3.9.9", True),
    ("3.9.1", "3.9.1", None), ("3.9.1rc1", "3.9.1", None), ("unknown", "3.9.1", None),
])
def test_versions_are_ordered_by_release(version: str, than: str, expected: "bool | None") -> None:
    assert _options.newer(version, than) is expected


def test_server_settings_are_compared_by_salted_hashes(tmp_path: pathlib.Path) -> None:
    """Defect 5 (server_settings_of_first_script_win): what tells two scripts' servers apart."""
    assert _options.is_server_setting("PREFECT_SERVER_DATABASE_CONNECTION_URL")
    assert _options.is_server_setting("PREFECT_API_DATABASE_CONNECTION_URL")
    assert _options.is_server_setting("PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED")
    for name in ("PREFECT_API_URL", "PREFECT_CLIENT_MAX_RETRIES", "PREFECT_SERVER_API_AUTH_STRING",
                 "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "PREFECT_SERVER_UI_ENABLED",
                 "PREFECT_HOME", "HOME"):
        assert not _options.is_server_setting(name), name
    secret = "postgresql+asyncpg://u:hunter2@db/prefect"
    recorded = _options.fingerprint({"PREFECT_SERVER_DATABASE_CONNECTION_URL": secret}, "salt")
    assert "hunter2" not in json.dumps(recorded)
    assert recorded != _options.fingerprint({"PREFECT_SERVER_DATABASE_CONNECTION_URL": secret}, "x")
    assert _options.differing_settings(recorded, "salt", {
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": secret}) == []
    assert _options.differing_settings(recorded, "salt", {}) == [
        "PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert _options.differing_settings({}, "salt", {"PREFECT_SERVER_LOGGING_LEVEL": "DEBUG"}) == [
        "PREFECT_SERVER_LOGGING_LEVEL"]


def test_server_settings_come_from_where_prefect_reads_them(tmp_path: pathlib.Path) -> None:
    """A script's server settings in its .env, prefect.toml, pyproject.toml or profile count
    as they would for a server started in its directory, first found wins."""
    (tmp_path / "prefect.toml").write_text(
        '[server.database]\nconnection_url = "sqlite+aiosqlite:////toml.db"\n'
        '[server.services.scheduler]\nenabled = false\n[api]\nurl = ""\n')
    (tmp_path / ".env").write_text("prefect_server_database_connection_url=sqlite+aiosqlite:////env.db\n")
    (tmp_path / "pyproject.toml").write_text("[tool.prefect.server]\ndefault_limit = 50\n")
    code = ("import json; from orchestration_client._get_client import server_settings; "
            "print(json.dumps(server_settings()))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(HOME=str(tmp_path), PREFECT_HOME=str(tmp_path / "home"),
               PREFECT_SERVER_LOGGING_LEVEL="DEBUG", PREFECT_CLIENT_MAX_RETRIES="3",
               PYTHONPATH=str(pathlib.Path(__file__).parents[2]))
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": "sqlite+aiosqlite:////env.db",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
        "PREFECT_SERVER_DEFAULT_LIMIT": "50",
        "PREFECT_SERVER_LOGGING_LEVEL": "DEBUG",
    }


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
    where = directory(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    machine = _identity.here()
    where.write_private(_files.RECORD, record(pid=child.pid, boot_id=machine.boot_id,
                                              pid_namespace=machine.pid_namespace))
    status = run(["server", "status"], tmp_path)
    assert status.returncode == 1 and f"(pid {child.pid}, recorded, has ended)" in status.stdout
    stop = run(["server", "stop"], tmp_path)
    assert stop.returncode == 0 and f"removed the record of pid {child.pid}" in stop.stdout
    assert not (tmp_path / _files.DIRECTORY / _files.RECORD).exists()


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


def test_the_notice_never_raises() -> None:
    """Defect 9 (notice_with_closed_stderr): with stderr closed, or a handler that fails,
    the notice is lost, never an error of the call that had something to say."""
    code = """
import logging, sys
from orchestration_client._local_server._notice import announce
sys.stderr.close()
announce("first", key="A")
class Broken(logging.Handler):
    def emit(self, record):
        raise RuntimeError("broken handler")
    def handleError(self, record):
        raise ValueError("and its error handling too")
logging.getLogger("orchestration_client").addHandler(Broken())
announce("second", key="B")
print("fine")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "fine\n", done.stderr


def test_server_setting_names_are_matched_in_any_case(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    """Round-2 repro lowercase_setting_names_ignored: Prefect reads its settings in any case,
    so ``prefect_server_x`` is the server setting ``PREFECT_SERVER_X`` (the later spelling
    in the environment wins, as in Prefect), and the same value in two spellings is one
    setting with one value."""
    from orchestration_client import _get_client

    monkeypatch.setattr(_get_client, "START_DIRECTORY", str(tmp_path))  # no settings files
    base = {"HOME": str(tmp_path), "PREFECT_HOME": str(tmp_path / "home")}
    url = "sqlite+aiosqlite:////a.db"
    name = "PREFECT_SERVER_DATABASE_CONNECTION_URL"
    assert _options.is_server_setting(name.lower())
    assert _options.is_server_setting("Prefect_Api_Database_Connection_Url")
    assert _get_client.server_settings({**base, name.lower(): url}) == {name: url}
    assert _get_client.server_settings({**base, name: "x", name.lower(): url}) == {name: url}
    assert _get_client.server_settings({**base, name.lower(): "x", name: url}) == {name: url}
    recorded = _options.fingerprint({name: url}, "salt")
    assert _options.differing_settings(recorded, "salt", {name.lower(): url}) == []
    assert _options.differing_settings(recorded, "salt", {}) == [name]


def test_only_settings_the_server_reads_are_compared() -> None:
    """Round-2 repro settings_false_positive_restarts (a): client-only settings with
    server-looking names do not tell two scripts' servers apart."""
    for name in ("PREFECT_TASK_SCHEDULING_DEFAULT_STORAGE_BLOCK", "PREFECT_EXPERIMENTS_WARN",
                 "PREFECT_TASKS_SCHEDULING_DELETE_FAILED_SUBMISSIONS",
                 "PREFECT_EVENTS_WORKER_MAX_QUEUE_SIZE", "PREFECT_EXPERIMENTS_PLUGINS_STRICT"):
        assert not _options.is_server_setting(name), name
    for name in ("PREFECT_TASK_SCHEDULING_MAX_SCHEDULED_QUEUE_SIZE", "PREFECT_PLUGINS_ENABLED",
                 "PREFECT_EXPERIMENTS_PLUGINS_ALLOW", "PREFECT_EVENTS_RETENTION_PERIOD",
                 "PREFECT_SERVER_DATABASE_TIMEOUT"):
        assert _options.is_server_setting(name), name


@pytest.mark.parametrize("name, same, different", [
    ("PREFECT_SERVER_DATABASE_TIMEOUT", ["10", "10.0", " 10 ", "+10", "010", "10.000"],
     ["11", "1e1", "10.5", ""]),
    ("PREFECT_SERVER_API_DEFAULT_LIMIT", ["0", "-0", "0.0", "000"], ["1", "-1"]),
    ("PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED", ["true", "True", "TRUE", "1", "on", "yes", "t"],
     ["false", "0", " true", "2"]),
    # Text, a timedelta, a set-or-boolean: compared as written.
    ("PREFECT_SERVER_DATABASE_CONNECTION_URL", ["sqlite+aiosqlite:////x.db"],
     [" sqlite+aiosqlite:////x.db", "SQLITE+aiosqlite:////x.db"]),
    ("PREFECT_SERVER_EVENTS_RETENTION_PERIOD", ["10"], ["10.0"]),
    ("PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED", ["true"], ["True", "1"]),
])  # fmt: skip
def test_one_value_in_other_spellings_is_one_setting(
    name: str, same: "list[str]", different: "list[str]"
) -> None:
    """Round-2 repro settings_false_positive_restarts (b)."""
    recorded = _options.fingerprint({name: same[0]}, "salt")
    for value in same:
        assert _options.differing_settings(recorded, "salt", {name: value}) == [], value
    for value in different:
        assert _options.differing_settings(recorded, "salt", {name: value}) == [name], value


KINDS_PROBE = """
import json, types, typing
from pydantic import AliasChoices
from pydantic_settings import BaseSettings
from prefect.settings.models.root import Settings

def walk(model, path):
    for field_name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseSettings):
            yield from walk(kind, path + (field_name,))
            continue
        alias = field.validation_alias
        names = ([a for a in alias.choices if isinstance(a, str)] if isinstance(alias, AliasChoices)
                 else [model.model_config.get("env_prefix") + field_name])
        union = typing.get_origin(kind) in (typing.Union, getattr(types, "UnionType", None))
        args = [a for a in typing.get_args(kind) if a is not type(None)] if union else [kind]
        seen = "boolean" if args == [bool] else "number" if args in ([int], [float]) else None
        for name in names:
            yield name.upper(), ".".join(path + (field_name,)), seen

print(json.dumps(list(walk(Settings, ()))))
"""


def test_server_settings_and_their_kinds_agree_with_prefect() -> None:
    """Every name of the installed Prefect's settings: those of ``server.*`` (and the plugin
    switches its database configuration reads) are server settings, no other is; a value
    is normalised as a boolean or a number only where Prefect reads one."""
    pytest.importorskip("prefect")
    from support.helpers import installed_prefect, prefect_is_older

    if prefect_is_older():
        pytest.skip(f"names of Prefect 3.9; Prefect {installed_prefect()} is installed")
    done = subprocess.run([sys.executable, "-c", KINDS_PROBE], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    server_read = ("plugins.enabled", "plugins.allow", "plugins.deny")
    for name, path, kind in json.loads(done.stdout):
        if path.startswith("server.") or path in server_read:
            not_compared = name.startswith(_options._NOT_COMPARED) or path.startswith("server.ui.")
            assert _options.is_server_setting(name) or not_compared, name
            assert _options.value_kind(name) in (None, kind), (name, kind)
        else:
            assert not _options.is_server_setting(name), name


def test_the_servers_environment_has_one_spelling_of_each_forced_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Prefect reads names in any case, the later spelling winning: a user's lower-case
    auth string after the forced one would replace the server's credential."""
    from orchestration_client._local_server._options import server_environment

    monkeypatch.setenv("PREFECT_SERVER_API_AUTH_STRING", "users")
    monkeypatch.setenv("prefect_server_api_auth_string", "users-too")
    monkeypatch.setenv("Prefect_Home", "/elsewhere")
    monkeypatch.setenv("PREFECT_API_KEY", "kept")
    env = server_environment({"PREFECT_SERVER_API_AUTH_STRING": "forced", "PREFECT_HOME": "/h"})
    spellings = [name for name in env if name.upper() in {"PREFECT_SERVER_API_AUTH_STRING", "PREFECT_HOME"}]
    assert sorted(spellings) == ["PREFECT_HOME", "PREFECT_SERVER_API_AUTH_STRING"]
    assert env["PREFECT_SERVER_API_AUTH_STRING"] == "forced" and env["PREFECT_HOME"] == "/h"
    assert env["PREFECT_API_KEY"] == "kept"
