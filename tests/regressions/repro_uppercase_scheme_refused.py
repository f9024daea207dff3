"""URL schemes are case-insensitive (RFC 3986). Prefect 3.9.1's client works with
PREFECT_API_URL="HTTP://127.0.0.1:4200/api" (httpx normalises it); our settings loader
accepts it too (it lower-cases before checking), but SyncPrefectClient then refuses it, so
get_client() fails for a configuration that works with Prefect.
No server needed: the refusal happens when the client is built.
"""
import os, sys, warnings
warnings.simplefilter("ignore")
from prefect.client.orchestration import SyncPrefectClient as PrefectClient
from orchestration_client import SyncPrefectClient, get_client

url = "HTTP://127.0.0.1:9/api"
print("prefect builds a client for", PrefectClient(url).api_url)
fails = 0
for label, build in [("SyncPrefectClient(url)", lambda: SyncPrefectClient(url)),
                     ("get_client() with PREFECT_API_URL", lambda: (os.environ.__setitem__("PREFECT_API_URL", url), get_client())[1])]:
    try:
        print("ok  ", label, build().api_url)
    except Exception as exc:
        fails += 1
        print("FAIL", label, f"-> {type(exc).__name__}: {exc}")
sys.exit(1 if fails else 0)
