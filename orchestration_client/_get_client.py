"""``get_client()``: a ``SyncPrefectClient`` configured as Prefect configures its own."""

import json
import os
from typing import Any, Dict, Mapping, Optional

import msgspec

from ._client import SyncPrefectClient
from ._settings._files import find_profile, read_dotenv, read_toml, toml_table
from ._settings._load import START_DIRECTORY, load_settings

__all__ = ["get_client", "server_settings"]


def get_client(
    httpx_settings: Optional[Mapping[str, Any]] = None, sync_client: bool = True
) -> SyncPrefectClient:
    """A client for the configured Prefect API, authenticated with the API auth string
    (Basic; wins) or API key (Bearer).

    Settings come from the environment, ``.env``, ``prefect.toml``, ``pyproject.toml`` and
    the active profile, in that order (see the README); ``httpx_settings`` wins over them.
    With no API URL anywhere, when ephemeral mode is on (Prefect's default profile turns it
    on) and the ``server`` extra is installed, the client uses the local Prefect server
    shared by this user's processes for this ``PREFECT_HOME`` and these server settings,
    starting it if none runs; it stops by itself when idle
    (``ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT``; 0 gives this process a server of its
    own, stopped when the client closes). A notice on stderr says so once per process.
    Calls to a local server never go through a proxy, and a client whose local server
    was stopped fails its next call at once, naming it. ``sync_client=False`` is refused:
    this package is synchronous by design.
    """
    if not sync_client:
        raise NotImplementedError(
            "orchestration_client is synchronous only: the async PrefectClient is "
            "deliberately not provided. Call get_client() (sync_client=True), or use the "
            "prefect package for async code."
        )
    settings = load_settings()
    api, server = settings.api_url, None
    if api is None and not (httpx_settings and "base_url" in httpx_settings):
        from . import _local_server

        missing = f"no PREFECT_API_URL in {settings.searched()}"
        if "api_url" in settings.origins:
            missing = f"PREFECT_API_URL is empty ({settings.origins['api_url']})"
        if not settings.ephemeral_enabled:
            origin = settings.origins.get("ephemeral_enabled")
            reason = f"ephemeral mode is off ({origin})" if origin else "ephemeral mode is off"
            raise ValueError(f"{_local_server.NO_URL_MESSAGE} ({missing}; {reason})")
        try:
            server = _local_server.server_for_client(
                missing, settings.ephemeral_startup_timeout, server_settings()
            )
        except ValueError as exc:  # the server extra is not installed, or a bad timeout
            raise ValueError(f"{exc} ({missing})") from exc
    try:  # from here on, a failure lets the server go again
        if server is not None:
            api = server.api_url
            if server.auth_string is not None:  # the shared server's credential, as Basic
                settings = msgspec.structs.replace(settings, auth_string=server.auth_string)
            options = dict(httpx_settings or {})
            if "proxy" not in options and "proxies" not in options:
                options["proxy"] = {}  # 127.0.0.1 of this machine: never through a proxy
            httpx_settings = options
        client = SyncPrefectClient._from_settings(
            api or "",
            settings,
            httpx_settings,
            check_new_connection=None if server is None else server.check_connection,
        )
    except BaseException:
        if server is not None:
            server.stop()
        raise
    if server is not None:
        client._adopt_server(server)
    return client


def server_settings(environ: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The Prefect server settings (``_local_server.is_server_setting``) this process has,
    from where a Prefect server started in this directory would read them, first found
    wins: the environment, ``.env``, ``prefect.toml`` (``[server]`` and below),
    ``pyproject.toml`` (``[tool.prefect.server]``), the active profile. The local server is
    started with them, and a running one is used only if it runs with the same."""
    from ._local_server import is_server_setting

    env = os.environ if environ is None else environ
    cwd = START_DIRECTORY
    dotenv = read_dotenv(os.path.join(cwd, ".env"), env)
    prefect_toml = read_toml(os.path.join(cwd, "prefect.toml"))
    pyproject = read_toml(os.path.join(cwd, "pyproject.toml"))
    profile = find_profile(env, cwd, dotenv, prefect_toml, pyproject)
    found: Dict[str, str] = {}
    layers = [
        {str(k).upper(): v for k, v in profile.values.items()},
        _flattened(toml_table(pyproject, ("tool", "prefect", "server")), "PREFECT_SERVER"),
        _flattened(toml_table(prefect_toml, ("server",)), "PREFECT_SERVER"),
        {k.upper(): v for k, v in (dotenv or {}).items() if v is not None},
        # Prefect matches names in any case; of two spellings, the later one wins.
        {k.upper(): v for k, v in env.items() if k[:8].upper() == "PREFECT_"},
    ]
    for layer in layers:  # lowest priority first
        for name, value in layer.items():
            if is_server_setting(name):
                found[name] = _text(value)
    return found


def _flattened(table: Any, prefix: str) -> Dict[str, Any]:
    """A TOML table as Prefect's environment names: ``[server.database] connection_url``
    is ``PREFECT_SERVER_DATABASE_CONNECTION_URL``."""
    if not isinstance(table, dict):
        return {}
    found: Dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}_{str(key).upper()}"
        if isinstance(value, dict):
            found.update(_flattened(value, name))
        else:
            found[name] = value
    return found


def _text(value: Any) -> str:
    """A setting's value as the environment would carry it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)
