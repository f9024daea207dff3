"""PREFECT_CLIENT_MAX_RETRIES="3.0" (env, .env, profile) or max_retries = 3.0 (prefect.toml)
is accepted by Prefect 3.9.1 (pydantic lax int: 3) but refused by ours with ValueError, so
get_client() fails on a configuration that works with Prefect. Compared in fresh processes.
"""
import os, subprocess, sys
env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT")}
env.update(PYTHONPATH=os.environ["PYTHONPATH"], PREFECT_CLIENT_MAX_RETRIES="3.0", PREFECT_API_URL="http://127.0.0.1:9/api",
           PREFECT_HOME="/tmp/repro-max-retries-home")
prefect = subprocess.run([sys.executable, "-c", "import warnings; warnings.simplefilter('ignore')\n"
                          "from prefect.settings import get_current_settings as g; print(g().client.max_retries)"],
                         env=env, capture_output=True, text=True)
ours = subprocess.run([sys.executable, "-c", "from orchestration_client import get_client\n"
                       "try:\n    get_client(); print('built')\nexcept Exception as e: print(type(e).__name__, e)"],
                      env=env, capture_output=True, text=True)
print("prefect max_retries:", prefect.stdout.strip() or prefect.stderr.strip()[-200:])
print("ours get_client():  ", ours.stdout.strip() or ours.stderr.strip()[-200:])
if ours.stdout.strip() != "built":
    print("FAIL"); sys.exit(1)
