"""Riding out a server restart, as promised, printed urllib3 WARNINGs in any application that
calls logging.basicConfig(): every retry after a refused or broken connection logged
"Retrying (PrefectRetry(total=4, ...)) after connection broken by 'NewConnectionError(...
Connection refused)': /api/admin/version" at WARNING on urllib3.connectionpool (urllib3 1.26
and 2.x). Issue 20 asks for no urllib3 WARNING in normal use; the client logs each retry
at DEBUG itself.

Found by an adversarial review of issue 20 (.repros/urllib3_warning_when_riding_out_restart.py).

Here: the server stops listening after the first call and is back 2.5 s later; one call
rides it out with no urllib3 WARNING, and the client's DEBUG record of each retry is
there. Then a plain requests session with its own urllib3 Retry, in the same process,
still gets its WARNING (only this client's retries are quiet), and the urllib3 logger's
level and handlers are as the application left them.
Exit status 1 while urllib3 logged a WARNING for the client, 0 once none. About 7 s.
"""

import http.server
import logging
import os
import socket
import sys
import threading
import time

os.environ["PREFECT_CLIENT_CSRF_SUPPORT_ENABLED"] = "false"

import requests
import requests.adapters
from urllib3.util.retry import Retry

from orchestration_client import SyncPrefectClient


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b'"3.9.1"'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")  # a restart closes every connection
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def free_port():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def main():
    logging.basicConfig(level=logging.WARNING)  # what many applications do
    collect = Collect()
    logging.getLogger().addHandler(collect)
    logging.getLogger("orchestration_client").setLevel(logging.DEBUG)
    urllib3_logger = logging.getLogger("urllib3.connectionpool")
    before = (urllib3_logger.level, list(urllib3_logger.handlers), urllib3_logger.propagate)
    port = free_port()
    servers = [Server(("127.0.0.1", port), Handler)]
    threading.Thread(target=servers[0].serve_forever, daemon=True).start()
    try:
        client = SyncPrefectClient(f"http://127.0.0.1:{port}/api")
        client.api_version()
        servers[0].shutdown()
        servers[0].server_close()  # the server restarts: refused for 2.5 s

        def back_up():
            time.sleep(2.5)
            servers.append(Server(("127.0.0.1", port), Handler))
            servers[-1].serve_forever()

        threading.Thread(target=back_up, daemon=True).start()
        started = time.monotonic()
        client.api_version()
        print(f"rode out the restart in {time.monotonic() - started:.1f} s")
    finally:
        servers[-1].shutdown()
        servers[-1].server_close()
    ours = [r for r in collect.records if r.name.startswith("urllib3") and r.levelno >= logging.WARNING]
    debug = [r for r in collect.records if r.name == "orchestration_client" and "retry" in r.getMessage()]
    print(f"urllib3 WARNINGs: {len(ours)}; the client's DEBUG retry records: {len(debug)}")

    # Someone else's requests session in the same process keeps its urllib3 WARNING.
    collect.records.clear()
    other = requests.Session()
    other.mount("http://", requests.adapters.HTTPAdapter(max_retries=Retry(connect=1, backoff_factor=0)))
    try:
        other.get(f"http://127.0.0.1:{free_port()}/", timeout=2)
    except requests.ConnectionError:
        pass
    theirs = [r for r in collect.records if r.name.startswith("urllib3") and r.levelno >= logging.WARNING]
    print(f"another session's urllib3 WARNINGs: {len(theirs)}")
    after = (urllib3_logger.level, list(urllib3_logger.handlers), urllib3_logger.propagate)

    ok = True
    if ours:
        print(f"DEFECT: {len(ours)} urllib3 WARNING(s) printed during a ridden-out restart: "
              f"{ours[0].getMessage()[:200]}")
        ok = False
    if not debug:
        print("the client logged no DEBUG record of its retries")
        ok = False
    if not theirs:
        print("another session's urllib3 WARNING was swallowed too")
        ok = False
    if after != before:
        print(f"the urllib3 logger was changed: {before} -> {after}")
        ok = False
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
