"""The client's exception tree (drawn in ``orchestration_client._exceptions``)::

OrchestrationClientError
 ├── PrefectHTTPStatusError   (also requests.HTTPError)
 │    └── ObjectNotFound       404
 ├── APIConnectionError       (also requests.ConnectionError)
 ├── APITimeoutError          (also requests.Timeout)
 ├── ResponseDecodeError      (also ValueError)
 │    └── ReplyTooLargeError   decoded body over the size limit
 ├── RequestValidationError   (also TypeError, ValueError)
 └── ClientClosedError        (also RuntimeError)
"""

from ._exceptions import (
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    ObjectNotFound,
    OrchestrationClientError,
    PrefectHTTPStatusError,
    RequestValidationError,
    ResponseDecodeError,
)
from ._reply_errors import ReplyTooLargeError

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "ClientClosedError",
    "ObjectNotFound",
    "OrchestrationClientError",
    "PrefectHTTPStatusError",
    "ReplyTooLargeError",
    "RequestValidationError",
    "ResponseDecodeError",
]
