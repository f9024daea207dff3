"""Silently a different server: Prefect 3.9.1 resolves its settings (.env, prefect.toml,
pyproject.toml in the working directory, and the environment) once, when prefect is
imported; get_client() later uses those. Ours re-reads them from the *current* directory
on every get_client(). A migrated script that starts in its project (prefect.toml -> team
server) and then os.chdir()s into a data/checkout directory that happens to hold a .env or
pyproject.toml with [tool.prefect] (another project's, a test server's) now sends its runs
to that other server, with no warning. (docs/configuration.md says settings are read when
each client is built, but docs/migration.md does not list this as a difference from Prefect;
for os.environ the same re-reading is documented.)
No server needed: only the resolved api_url is compared.
"""
import os, subprocess, sys, tempfile, textwrap

root = tempfile.mkdtemp()
proj = os.path.join(root, "proj"); other = os.path.join(root, "checkout")
os.makedirs(proj); os.makedirs(other)
open(os.path.join(proj, "prefect.toml"), "w").write('[api]\nurl = "http://127.0.0.1:1111/api"\n')
open(os.path.join(other, "pyproject.toml"), "w").write('[tool.prefect.api]\nurl = "http://127.0.0.1:2222/api"\n')
code = textwrap.dedent(f"""
    import os, sys, warnings
    warnings.simplefilter("ignore")
    if sys.argv[1] == "prefect":
        from prefect import get_client
    else:
        from orchestration_client import get_client
    os.chdir({other!r})               # e.g. into a repository checkout
    client = get_client(sync_client=True)
    print(str(client.api_url).rstrip("/"))
""")
env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT")}
env.update(PYTHONPATH=os.environ["PYTHONPATH"], HOME=root, PREFECT_HOME=os.path.join(root, "home"))
urls = {}
for which in ("prefect", "ours"):
    out = subprocess.run([sys.executable, "-c", code, which], cwd=proj, env=env, capture_output=True, text=True)
    urls[which] = out.stdout.strip() or out.stderr.strip().splitlines()[-1]
print("prefect:", urls["prefect"]); print("ours:   ", urls["ours"])
if urls["prefect"] != urls["ours"]:
    print("FAIL: after os.chdir the two clients talk to different servers")
    sys.exit(1)
print("ok")
