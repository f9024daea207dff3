"""The client's exception tree (drawn in ``orchestration_client._exceptions``)::

PrefectException             (same name as Prefect's, for ``except PrefectException``)
 └── OrchestrationClientError
      ├── PrefectHTTPStatusError   (also requests.HTTPError)
      │    ├── ObjectNotFound       404
      │    └── ObjectAlreadyExists  409, constructible as in Prefect
      ├── APIConnectionError       (also requests.ConnectionError)
      ├── APITimeoutError          (also requests.Timeout)
      ├── ResponseDecodeError      (also ValueError)
      ├── RequestValidationError   (also TypeError, ValueError)
      └── ClientClosedError        (also RuntimeError)
"""

from ._exceptions import (
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    ObjectAlreadyExists,
    ObjectNotFound,
    OrchestrationClientError,
    PrefectException,
    PrefectHTTPStatusError,
    RequestValidationError,
    ResponseDecodeError,
)

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "ClientClosedError",
    "ObjectAlreadyExists",
    "ObjectNotFound",
    "OrchestrationClientError",
    "PrefectException",
    "PrefectHTTPStatusError",
    "RequestValidationError",
    "ResponseDecodeError",
]
