"""The local server layer: the Prefect server that ``get_client()`` uses when no API URL is
configured anywhere, and the ASGI app server behind ``SyncPrefectClient(app)``.

It owns discovering, starting, sharing and stopping that server, the process that runs it
(``_guard``), its files under ``PREFECT_HOME`` and the ``python -m orchestration_client
server`` command. It may import the standard library only (plus uvicorn and Prefect
inside the server process): ``get_client()`` hands it what it needs from the settings
(the server settings of the script among them), and hands the client the server's
``check_connection``, which vets every new connection before anything is sent on it. Nothing
imports it at module import time: it is loaded only when no URL is configured or an ASGI
app is given.

* ``_shared``: one server per ``PREFECT_HOME`` (and server settings) shared by every process
  of this user; it outlives the process that started it and stops after
  ``ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT`` seconds (default 600) with no request and no
  open client. Files and locks: ``_files``; is it really ours: ``_identity``.
* ``_per_process``: one server per process, stopped with its last client (a timeout of 0,
  a platform without ``flock``/``fork``, or a script whose server settings differ from
  those of a shared server that other scripts are using).
* ``_asgi``: ``serve_app(app)`` on a thread of this process.
* ``_notice``: the once-per-process notice that a local server is in use.
* ``_cli``: ``status``, ``stop`` and ``start``.
"""

from typing import Mapping, Optional

from ._asgi import serve_app
from ._common import DEFAULT_STARTUP_TIMEOUT, NO_URL_MESSAGE, LocalServer, require_server_extra
from ._notice import announce, install
from ._options import (
    IDLE_TIMEOUT_VARIABLE,
    idle_timeout,
    is_server_setting,
    prefect_home,
    shared_server_supported,
)

__all__ = [
    "NO_URL_MESSAGE",
    "LocalServer",
    "data_place",
    "is_server_setting",
    "serve_app",
    "server_for_client",
]


def server_for_client(
    missing: str, startup_timeout: Optional[float], settings: Optional[Mapping[str, str]] = None
) -> LocalServer:
    """The local server a client without an API URL should use; ``missing`` says where a
    URL was looked for, for the notice; ``settings`` are this process's server settings
    (``is_server_setting`` names, with their values), which a shared server must run with.
    ``ValueError`` if the ``server`` extra is missing or the idle timeout is malformed;
    ``RuntimeError`` or ``OSError`` (saying what to do) if no server can be had. A server
    this call started or joined is let go again if the call fails."""
    idle = idle_timeout()
    require_server_extra()
    install()  # what happens on the way (a server stopped, replaced) is visible too
    timeout = startup_timeout or DEFAULT_STARTUP_TIMEOUT
    if idle == 0 or not shared_server_supported():
        why = f"{IDLE_TIMEOUT_VARIABLE}=0" if idle == 0 else "no shared server on this platform"
        return _own_server(missing, timeout, why)

    from ._shared import Fallback, connect, stop_command

    home = prefect_home()
    shared = connect(home, idle, timeout, settings)
    if isinstance(shared, Fallback):
        return _own_server(missing, timeout, shared.reason)
    try:
        record = shared.record
        if shared.started_in is not None:
            what = f"started a local Prefect server at {record.url} in {shared.started_in:.1f} s"
        else:
            what = f"using the local Prefect server at {record.url}"
        note = f" {shared.note}" if shared.note else ""
        announce(
            f"{missing}; {what} (pid {record.pid}, {data_place(home, settings or {})}). It "
            f"is shared by your scripts and stops after {record.idle_timeout:g} s with no "
            f"request and no open client; to stop it now: {stop_command()}.{note}",
            key=f"{missing}\0{record.url}\0{note}",
        )
    except BaseException:
        shared.stop()
        raise
    return shared


#: Settings that put the server's database somewhere else than ``PREFECT_HOME`` (Prefect's
#: names and aliases for the connection URL and its parts).
_DATABASE_SETTINGS = tuple(
    f"PREFECT_{section}_DATABASE_{part}"
    for section in ("SERVER", "API")
    for part in ("CONNECTION_URL", "HOST", "NAME")
)


def data_place(home: str, settings: Mapping[str, str]) -> str:
    """Where the notice says the data is: ``PREFECT_HOME``, or the database a setting
    configures (named, never its value: a URL may carry a password)."""
    for name, value in settings.items():
        if name.upper() in _DATABASE_SETTINGS and value.strip():
            return f"data in the database {name.upper()} configures"
    return f"data in {home}"


def _own_server(missing: str, timeout: float, why: str) -> LocalServer:
    from ._per_process import per_process_server

    server = per_process_server(timeout)
    try:
        announce(
            f"{missing}; using a local Prefect server at {server.api_url} for this process "
            f"only ({why}); it stops when the last client closes",
            key=f"{missing}\0{server.api_url}\0{why}",
        )
    except BaseException:
        server.stop()
        raise
    return server
