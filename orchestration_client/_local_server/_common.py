"""What every kind of local server shares: the handle a client holds, the hint shown when
no server can be had, and the check that the ``server`` extra is installed."""

import importlib.util
import logging
import socket
from typing import Optional

__all__ = [
    "DEFAULT_STARTUP_TIMEOUT",
    "NO_URL_MESSAGE",
    "LocalServer",
    "logger",
    "require_server_extra",
]

#: Messages about local servers; silence them with
#: ``logging.getLogger("orchestration_client.local_server").setLevel(logging.ERROR)``.
logger = logging.getLogger("orchestration_client.local_server")

NO_URL_MESSAGE = (
    "No Prefect API URL is configured. Set PREFECT_API_URL to the address of a Prefect "
    "server (for example http://127.0.0.1:4200/api), or install the embedded server with "
    "pip install 'orchestration_client[server]'."
)
DEFAULT_STARTUP_TIMEOUT = 60.0  # a fresh database spends most of this on migrations


class LocalServer:
    """A Prefect API on 127.0.0.1 used by a client; ``stop()`` says the client is done
    with it (a server of this process then ends; the shared server keeps running).

    ``auth_string`` is the credential to send, or None; it never shows in ``repr``."""

    auth_string: Optional[str] = None

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def check_connection(self, sock: Optional[socket.socket]) -> Optional[str]:
        """Called by the client before it opens a new connection to this server (``sock``
        None) and once it is open, before anything is sent on it: None to go ahead, or
        why not (the client then fails the call at once, and sends nothing)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api_url={self.api_url!r})"


def require_server_extra() -> None:
    """``ValueError(NO_URL_MESSAGE)`` unless Prefect's server and uvicorn are importable."""
    if importlib.util.find_spec("prefect") is None or importlib.util.find_spec("uvicorn") is None:
        raise ValueError(NO_URL_MESSAGE)
