"""The local server layer: the Prefect server that ``get_client()`` uses when no API URL is
configured anywhere, and the ASGI app server behind ``SyncPrefectClient(app)``.

It owns discovering, starting, sharing and stopping that server, the process that runs it
(``_guard``), its files under ``PREFECT_HOME`` and the ``python -m orchestration_client
server`` command. It may import the standard library only (plus uvicorn and Prefect
inside the server process): ``get_client()`` hands it what it needs from the settings. Nothing
imports it at module import time: it is loaded only when no URL is configured or an ASGI
app is given.

* ``_shared``: one server per ``PREFECT_HOME`` shared by every process of this user; it
  outlives the process that started it and stops after
  ``ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT`` seconds (default 600) with no request and no
  open client. Files and locks: ``_files``; is it really ours: ``_identity``.
* ``_per_process``: one server per process, stopped with its last client (a timeout of 0,
  or a platform without ``flock``/``fork``).
* ``_asgi``: ``serve_app(app)`` on a thread of this process.
* ``_notice``: the once-per-process notice that a local server is in use.
* ``_cli``: ``status``, ``stop`` and ``start``.
"""

from typing import Optional

from ._asgi import serve_app
from ._common import DEFAULT_STARTUP_TIMEOUT, NO_URL_MESSAGE, LocalServer, require_server_extra
from ._notice import announce
from ._options import IDLE_TIMEOUT_VARIABLE, idle_timeout, prefect_home, shared_server_supported

__all__ = ["NO_URL_MESSAGE", "LocalServer", "serve_app", "server_for_client"]


def server_for_client(missing: str, startup_timeout: Optional[float]) -> LocalServer:
    """The local server a client without an API URL should use; ``missing`` says where a
    URL was looked for, for the notice. ``ValueError`` if the ``server`` extra is missing or
    the idle timeout is malformed; ``RuntimeError`` if the server cannot start."""
    idle = idle_timeout()
    require_server_extra()
    timeout = startup_timeout or DEFAULT_STARTUP_TIMEOUT
    if idle == 0 or not shared_server_supported():
        from ._per_process import per_process_server

        server = per_process_server(timeout)
        why = f"{IDLE_TIMEOUT_VARIABLE}=0" if idle == 0 else "no shared server on this platform"
        announce(
            f"{missing}; using a local Prefect server at {server.api_url} for this process "
            f"only ({why}); it stops when the last client closes",
            key=f"{missing}\0{server.api_url}",
        )
        return server

    from ._shared import connect, stop_command

    home = prefect_home()
    shared = connect(home, idle, timeout)
    record = shared.record
    if shared.started_in is not None:
        what = f"started a local Prefect server at {record.url} in {shared.started_in:.1f} s"
    else:
        what = f"using the local Prefect server at {record.url}"
    announce(
        f"{missing}; {what} (pid {record.pid}, data in {home}). It is shared by your scripts "
        f"and stops after {record.idle_timeout:g} s with no request and no open client; to "
        f"stop it now: {stop_command()}",
        key=f"{missing}\0{record.url}",
    )
    return shared
