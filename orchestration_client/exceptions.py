"""The client's exception tree (drawn in ``orchestration_client._exceptions``)::

PrefectException             (same name as Prefect's, for ``except PrefectException``)
 └── OrchestrationClientError
      ├── PrefectHTTPStatusError   (also requests.HTTPError)
      │    ├── ObjectNotFound       404
      │    ├── ObjectAlreadyExists  409, constructible as in Prefect
      │    └── FeatureNotSupported  422: the server is too old for a feature used
      ├── APIConnectionError       (also requests.ConnectionError)
      ├── APITimeoutError          (also requests.Timeout)
      ├── ResponseDecodeError      (also ValueError)
      │    └── ReplyTooLargeError   the decoded body is over the size limit
      ├── RequestValidationError   (also TypeError, ValueError)
      └── ClientClosedError        (also RuntimeError)
"""

from ._calls._exactly_once import StateChangeOutcomeUnknown
from ._calls._features import FeatureNotSupported
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
from ._http._reply_errors import ReplyTooLargeError

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "ClientClosedError",
    "FeatureNotSupported",
    "ObjectAlreadyExists",
    "ObjectNotFound",
    "OrchestrationClientError",
    "PrefectException",
    "PrefectHTTPStatusError",
    "ReplyTooLargeError",
    "RequestValidationError",
    "ResponseDecodeError",
    "StateChangeOutcomeUnknown",
]
