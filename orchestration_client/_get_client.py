"""``get_client()``: a ``SyncPrefectClient`` configured as Prefect configures its own."""

from typing import Any, Mapping, Optional

import msgspec

from ._client import SyncPrefectClient
from ._settings._load import load_settings

__all__ = ["get_client"]


def get_client(
    httpx_settings: Optional[Mapping[str, Any]] = None, sync_client: bool = True
) -> SyncPrefectClient:
    """A client for the configured Prefect API, authenticated with the API auth string
    (Basic; wins) or API key (Bearer).

    Settings come from the environment, ``.env``, ``prefect.toml``, ``pyproject.toml`` and
    the active profile, in that order (see the README); ``httpx_settings`` wins over them.
    With no API URL anywhere, when ephemeral mode is on (Prefect's default profile turns it
    on) and the ``server`` extra is installed, the client uses the local Prefect server
    shared by this user's processes for this ``PREFECT_HOME``, starting it if none runs; it
    stops by itself when idle (``ORCHESTRATION_CLIENT_SERVER_IDLE_TIMEOUT``; 0 gives this
    process a server of its own, stopped when the client closes). A notice on stderr says
    so once per process. ``sync_client=False`` is refused: this package is synchronous by
    design.
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
            server = _local_server.server_for_client(missing, settings.ephemeral_startup_timeout)
        except ValueError as exc:  # the server extra is not installed, or a bad timeout
            raise ValueError(f"{exc} ({missing})") from exc
        api = server.api_url
        if server.auth_string is not None:  # the shared server's credential, sent as Basic
            settings = msgspec.structs.replace(settings, auth_string=server.auth_string)
    try:
        client = SyncPrefectClient._from_settings(api or "", settings, httpx_settings)
    except BaseException:
        if server is not None:
            server.stop()
        raise
    if server is not None:
        client._adopt_server(server)
    return client
