"""``get_client()``: a ``SyncPrefectClient`` configured from the environment."""

from typing import Any, Mapping, Optional

from ._client import SyncPrefectClient
from ._settings import load_settings

__all__ = ["get_client"]


def get_client(
    httpx_settings: Optional[Mapping[str, Any]] = None, sync_client: bool = True
) -> SyncPrefectClient:
    """A client for ``PREFECT_API_URL``, authenticated with ``PREFECT_API_AUTH_STRING``
    (Basic; wins) or ``PREFECT_API_KEY`` (Bearer).

    With no ``PREFECT_API_URL``, a local Prefect server is started for this process if the
    ``server`` extra is installed (set ``PREFECT_SERVER_EPHEMERAL_ENABLED=false`` to refuse);
    it stops when the client closes. ``sync_client=False`` is refused: this package is
    synchronous by design.
    """
    if not sync_client:
        raise NotImplementedError(
            "orchestration_client is synchronous only: the async PrefectClient is "
            "deliberately not provided. Call get_client() (sync_client=True), or use the "
            "prefect package for async code."
        )
    settings = load_settings()
    api, server = settings.api_url, None
    if api is None:
        from . import _ephemeral

        if settings.ephemeral_enabled is False:
            raise ValueError(_ephemeral.NO_URL_MESSAGE)
        server = _ephemeral.shared_subprocess_server(settings.ephemeral_startup_timeout)
        api = server.api_url
    try:
        client = SyncPrefectClient(
            api,
            auth_string=settings.auth_string,
            api_key=settings.api_key,
            httpx_settings=httpx_settings,
        )
    except BaseException:
        if server is not None:
            server.stop()
        raise
    if server is not None:
        client._adopt_server(server)
    return client
