"""A WSGI app as legacy code writes one: the client is made at import, and used there once
(so with ``gunicorn --preload`` the master holds its connections and CSRF token when it
forks the workers; a gevent worker then monkey-patches after the client was made).

``GET /lifecycle?label=x`` runs one lifecycle and ``GET /read`` reads a run made by this
worker; each answers ``{"pid", "problems", "warnings"}``. Env: PREFECT_API_URL, WORLD_TAG.
"""

import json
import os
import threading
from typing import Any, Callable, Iterable, List
from urllib.parse import parse_qs

from world import Tally, watch_warnings

from orchestration_client import get_client

TAG = os.environ["WORLD_TAG"]
client = get_client()
logged = watch_warnings()
at_import = Tally()
at_import.run(client, TAG, "at-import")
if at_import.problems:
    raise RuntimeError(f"the lifecycle at import failed: {at_import.problems}")
made: List[Any] = []
lock = threading.Lock()


def app(environ: Any, start_response: Callable[..., Any]) -> Iterable[bytes]:
    tally = Tally()
    path = environ.get("PATH_INFO", "")
    if path == "/lifecycle":
        label = parse_qs(environ.get("QUERY_STRING", "")).get("label", ["?"])[0]
        tally.run(client, TAG, label)
        with lock:
            made.extend(tally.made)
    elif path == "/read":
        with lock:
            tally.made = list(made) or list(at_import.made)
        tally.read(client, "read")
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    body = json.dumps({"pid": os.getpid(), "problems": tally.problems, "warnings": logged.seen,
                       "right": tally.right + tally.reads_right}).encode()  # fmt: skip
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])  # fmt: skip
    return [body]
