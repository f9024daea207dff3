"""Proxy URLs are not checked when the client is built (issue item 16: bad settings are
refused at build, naming the variable). A proxy URL with an empty user:password
('http://:@' -- empty user:password and no host -- via httpx_settings['proxy'] or HTTP_PROXY) makes every call
raise a bare TypeError, outside the package's error tree; an out-of-range port is accepted at
build and every call then fails with "Could not reach the Prefect API".
Expected: refused when the client is built, naming the setting."""
import os, subprocess, sys
code = r'''
import sys, orchestration_client
from orchestration_client.exceptions import OrchestrationClientError
opts = {"proxy": sys.argv[1]} if sys.argv[2] == "opt" else None
try:
    c = orchestration_client.SyncPrefectClient("http://127.0.0.1:9/api", httpx_settings=opts)
except Exception as e:
    print("refused at build:", type(e).__name__, e); sys.exit(0)
try:
    c.hello()
except OrchestrationClientError as e:
    print("accepted at build; call:", type(e).__name__, str(e)[:110]); sys.exit(3)
except BaseException as e:
    print(f"accepted at build; call raised {type(e).__module__}.{type(e).__name__} (outside the tree): {e}"); sys.exit(4)
'''
worst = 0
for where in ("opt", "env"):
    for proxy in ("http://:@", "http://127.0.0.1:99999"):
        env = dict(os.environ, PYTHONPATH=os.environ["PYTHONPATH"], PREFECT_CLIENT_MAX_RETRIES="0")
        if where == "env":
            env["HTTP_PROXY"] = proxy
        p = subprocess.run([sys.executable, "-c", code, proxy, where], env=env, capture_output=True, text=True, timeout=60)
        print(where, proxy, "->", (p.stdout or p.stderr).strip()[-200:])
        worst = max(worst, p.returncode)
print("FAIL" if worst else "ok")
sys.exit(1 if worst else 0)
