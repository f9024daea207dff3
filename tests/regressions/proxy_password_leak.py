"""A proxy URL whose password has an unencoded '/' or '#' (httpx_settings['proxy'], or
HTTPS_PROXY/HTTP_PROXY in the environment) is accepted when the client is built, then every
call fails with an APIConnectionError whose message shows the password's prefix
("Failed to parse: 'user:s3cr' is not a valid host or port"). The same mistake in the API
URL is refused at build time without showing it. Expected: no part of the password in any
message; refused when the client is built."""
import os, sys, subprocess
code = r'''
import os, sys, orchestration_client
opts = {"proxy": sys.argv[1]} if sys.argv[2] == "opt" else None
try:
    c = orchestration_client.SyncPrefectClient("http://127.0.0.1:9/api", httpx_settings=opts)
    c.hello()
except BaseException as e:
    print(f"{type(e).__name__}: {e}")
'''
fail = False
for where in ("opt", "env"):
    for proxy in ("http://user:s3cr/etPW@127.0.0.1:3128", "http://user:s3cr#etPW@127.0.0.1:3128"):
        env = dict(os.environ, PYTHONPATH=os.environ["PYTHONPATH"], PREFECT_CLIENT_MAX_RETRIES="0")
        if where == "env":
            env["HTTP_PROXY"] = proxy
        out = subprocess.run([sys.executable, "-c", code, proxy, where], env=env,
                             capture_output=True, text=True, timeout=60).stdout.strip()
        leak = "s3cr" in out
        fail |= leak
        print(where, repr(proxy[12:22]), "FAIL (password prefix shown):" if leak else "ok:", out[:170])
sys.exit(1 if fail else 0)
