"""The client's exception tree (drawn in ``orchestration_client._exceptions``)::

OrchestrationClientError
 ├── PrefectHTTPStatusError   (also requests.HTTPError)
 │    ├── ObjectNotFound       404
 │    └── FeatureNotSupported  422: the server is too old for a feature used
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
    ObjectNotFound,
    OrchestrationClientError,
    PrefectHTTPStatusError,
    RequestValidationError,
    ResponseDecodeError,
)
from ._features import FeatureNotSupported

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "ClientClosedError",
    "FeatureNotSupported",
    "ObjectNotFound",
    "OrchestrationClientError",
    "PrefectHTTPStatusError",
    "RequestValidationError",
    "ResponseDecodeError",
]
