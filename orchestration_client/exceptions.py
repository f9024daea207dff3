"""The client's exception tree (drawn in ``orchestration_client._exceptions``)::

OrchestrationClientError
 ├── PrefectHTTPStatusError   (also requests.HTTPError)
 │    └── ObjectNotFound       404
 ├── APIConnectionError       (also requests.ConnectionError)
 ├── APITimeoutError          (also requests.Timeout)
 ├── ResponseDecodeError      (also ValueError)
 ├── RequestValidationError   (also TypeError, ValueError)
 └── ClientClosedError        (also RuntimeError)
"""

from ._exactly_once import StateChangeOutcomeUnknown
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

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "ClientClosedError",
    "ObjectNotFound",
    "OrchestrationClientError",
    "PrefectHTTPStatusError",
    "RequestValidationError",
    "ResponseDecodeError",
    "StateChangeOutcomeUnknown",
]
