"""A gzip reply followed by trailing bytes (zero padding or a stray newline, as some proxies
and old servers add) fails every call with ResponseDecodeError. urllib3/requests and
httpx (Prefect's client) decode it: they ignore data after the gzip member that is not
another gzip member. Expected: the body is decoded (as before the change)."""
import os
import sys, gzip, json
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from support.regression_stub import Stub
import orchestration_client
import requests

def handler(conn, method, path, headers, body, state):
    gz = gzip.compress(json.dumps("Hello!").encode()) + b"\x00\x00\x00\x00\n"
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(gz) + gz)
    return True

stub = Stub(handler)
try:
    plain = requests.get(stub.url + "/hello")
    print("plain requests:", plain.status_code, plain.content)
    try:
        import httpx
        print("httpx:", httpx.get(stub.url + "/hello").content)
    except ImportError:
        pass
    c = orchestration_client.SyncPrefectClient(stub.url)
    try:
        r = c.hello()
        print("client:", r.content)
    except Exception as exc:
        print("FAIL: client:", type(exc).__name__, exc)
        sys.exit(1)
finally:
    stub.stop()
