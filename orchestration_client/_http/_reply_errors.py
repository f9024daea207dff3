"""Errors for replies refused while they were read (see ``_connection``)."""

from typing import Mapping

import requests
import requests.structures

from .._exceptions import ResponseDecodeError

__all__ = ["ReplyTooLargeError", "bodiless_response"]


class ReplyTooLargeError(ResponseDecodeError):
    """A reply body larger (once decoded) than the client's limit; reading stopped there.

    ``limit`` is the limit in bytes (``ORCHESTRATION_CLIENT_MAX_REPLY_BYTES``, default
    64 MiB), ``endpoint`` is ``"METHOD /path"``; ``response`` has the status and headers
    and an empty body.
    """

    def __init__(
        self, message: str, *, endpoint: str, response: requests.Response, limit: int
    ) -> None:
        super().__init__(message, endpoint=endpoint, response=response)
        self.limit = limit


def bodiless_response(
    request: requests.PreparedRequest, status: int, reason: str, headers: Mapping[str, str]
) -> requests.Response:
    """A ``requests.Response`` for a reply whose body was not kept."""
    response = requests.Response()
    response.status_code = status
    response.reason = reason
    response.headers = requests.structures.CaseInsensitiveDict(headers)
    response.url = request.url or ""
    response.request = request
    response._content = b""
    return response
