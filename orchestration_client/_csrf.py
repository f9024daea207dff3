"""The CSRF token of one client, for servers with CSRF protection on."""

import datetime
import logging
import threading
import uuid
from typing import TYPE_CHECKING, Dict, Optional

import msgspec

from ._codec import ReplyDecoder

if TYPE_CHECKING:
    from ._transport import Transport

__all__ = ["CsrfToken"]

logger = logging.getLogger("orchestration_client")

_RENEWAL_MARGIN = datetime.timedelta(seconds=5)


class _TokenReply(msgspec.Struct):
    token: str
    expiration: datetime.datetime


_token_reply: ReplyDecoder[_TokenReply] = ReplyDecoder(_TokenReply, "CSRF token")


class CsrfToken:
    """The CSRF token of one client: fetched on first need, renewed shortly before it
    expires or when the server calls it invalid, switched off for good if the server has
    CSRF disabled.

    All threads of a client share one client id, and a new token replaces the old one on
    the server. So a thread renews a refused token only if it is still the current one;
    if another thread has renewed it meanwhile, the new token is simply used.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.client_id = str(uuid.uuid4())
        self._token: Optional[str] = None
        self._renew_at: Optional[datetime.datetime] = None
        self._lock = threading.Lock()

    def headers(self, transport: "Transport", *, refused: Optional[str] = None) -> Dict[str, str]:
        """Headers for a mutating request; ``refused`` is a token the server rejected."""
        with self._lock:
            now = datetime.datetime.now(datetime.timezone.utc)
            if self.enabled and (
                self._token is None
                or self._token == refused
                or (self._renew_at is not None and now >= self._renew_at)
            ):
                self._fetch(transport)
            if not self.enabled or self._token is None:
                return {}
            return {"Prefect-Csrf-Token": self._token, "Prefect-Csrf-Client": self.client_id}

    def _fetch(self, transport: "Transport") -> None:
        response = transport.send("GET", "/csrf-token", params={"client": self.client_id})
        if response.status_code == 404 or (
            response.status_code == 422 and b"CSRF protection is disabled" in response.content
        ):
            logger.debug("server has CSRF protection off; not sending CSRF tokens")
            self.enabled = False
            return
        transport.raise_for_status(response)
        token = _token_reply.decode(response)
        expiration = token.expiration
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=datetime.timezone.utc)
        # Renew a little early (a quarter of the lifetime, at most 5 s), so that a request
        # stamped just before expiry does not arrive just after it.
        lifetime = expiration - datetime.datetime.now(datetime.timezone.utc)
        margin = min(_RENEWAL_MARGIN, max(lifetime / 4, datetime.timedelta(0)))
        self._token, self._renew_at = token.token, expiration - margin
