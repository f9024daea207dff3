"""Runs as the embedded Prefect server's process: ties its life to its parent's, then runs
uvicorn. Started by ``_ephemeral`` as ``python _server_guard.py <parent pid> <pdeathsig>
<uvicorn arguments...>``, by path, so it needs nothing but the standard library and uvicorn.

However the parent ends (exit, SIGTERM, SIGKILL, OOM kill), the server ends too:

* the parent holds the write end of this process's stdin and never writes; when the parent
  dies the pipe closes, a watchdog thread reads EOF (it also notices the parent pid change),
  and the whole process group (the server and anything it started) gets SIGTERM, then
  SIGKILL after ``GRACE_SECONDS``;
* on Linux the kernel also sends SIGTERM at once (``prctl(PR_SET_PDEATHSIG)``), when the
  parent started the server from its main thread (the signal follows the thread that
  forked, so it is not used from other threads).
"""

import os
import signal
import sys
import threading
import time
from typing import List

GRACE_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1


def _set_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the watchdog still covers it


def _end_all(sig: int) -> None:
    """Signal this process's group when it leads one (its children too), else itself."""
    if hasattr(os, "killpg") and os.getpgid(0) == os.getpid():
        os.killpg(os.getpid(), sig)
    else:
        os.kill(os.getpid(), sig)


def _watch(parent_pid: int) -> None:
    """Wait until the parent is gone, then end the server, by force if it lingers."""
    stdin = sys.stdin.buffer
    reader = threading.Thread(target=lambda: stdin.read(), daemon=True)
    reader.start()  # read() returns at EOF: the parent's end of the pipe closed
    while reader.is_alive() and os.getppid() == parent_pid:
        reader.join(0.5)
    _end_all(signal.SIGTERM)
    time.sleep(GRACE_SECONDS)
    _end_all(signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)


def main(argv: List[str]) -> None:
    parent_pid, pdeathsig, uvicorn_args = int(argv[1]), argv[2] == "1", argv[3:]
    if pdeathsig:
        _set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        sys.exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), daemon=True).start()
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
    from uvicorn.main import main as uvicorn_main  # not shadowed by this package's modules

    sys.argv = ["uvicorn", *uvicorn_args]
    uvicorn_main()


if __name__ == "__main__":
    main(sys.argv)
