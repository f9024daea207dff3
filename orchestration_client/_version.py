"""Version constants: ours, and the Prefect release we speak for."""

__version__ = "0.1.0"

#: The Prefect release whose client this package mirrors and is tested against.
#: ``client_version()`` reports it, because servers are compared with Prefect versions.
PREFECT_VERSION = "3.9.1"

#: The API schema version Prefect sends in ``X-PREFECT-API-VERSION``.
SERVER_API_VERSION = "0.8.4"

USER_AGENT = f"orchestration_client/{__version__} (API {SERVER_API_VERSION})"
