"""The proxy variables: the test sets HTTP_PROXY/http_proxy (a recording proxy) and
NO_PROXY/no_proxy, and an API key; this script runs 3 lifecycles and 6 reads with
``get_client()``. The test then checks whether the proxy relayed them, and that the key
reached it only when NO_PROXY did not name the API. Env: PREFECT_API_URL, PREFECT_API_KEY,
WORLD_TAG, the proxy variables."""

import os

from world import Tally, watch_warnings

from orchestration_client import get_client

TAG = os.environ["WORLD_TAG"]
tally = Tally()
logged = watch_warnings()
with get_client() as client:
    for index in range(3):
        tally.run(client, TAG, f"proxy-{index}")
    for _ in range(6):
        tally.read(client, "proxy")
    tally.info["proxies"] = {
        k: v for k, v in client._transport.session.proxies.items() if k != "no"
    }
tally.made = []
tally.report(logged)
