"""A container liveness check: exit 0 when the Prefect API is healthy and compatible,
non-zero (with the reason on stderr) when it is down or runs another major version.

    PREFECT_API_URL=http://prefect:4200/api python examples/health.py || restart-me

With no URL configured and the `server` extra installed, it checks the local server shared
by your scripts (useful only to try it out).
"""

import sys

from orchestration_client import get_client

with get_client(httpx_settings={"timeout": 5}) as client:
    problem = client.api_healthcheck()  # returns the error instead of raising
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        sys.exit(1)
    greeting = client.hello().json()
    try:
        client.raise_for_api_version_mismatch()
    except RuntimeError as error:
        print(f"incompatible: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"healthy: {client.api_url} says {greeting!r}, server {client.api_version()}, "
          f"client built for {client.client_version()}")
