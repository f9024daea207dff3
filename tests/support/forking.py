"""Run work in a child made by ``os.fork()`` and collect what it found, for fork tests."""

import json
import os
import select
import signal
from typing import Callable, List, Tuple


def in_child(work: Callable[[], List[str]]) -> Tuple[int, int]:
    """Fork; the child runs ``work`` (returning problems found) and exits at once.
    Returns the child's pid and the read end of its report, for :func:`report`."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_end)
            os.write(write_end, json.dumps(work()).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    return pid, read_end


def report(pid: int, read_end: int, timeout: float = 120) -> List[str]:
    """The child's problems, once it has exited cleanly; a child still silent after
    ``timeout`` seconds is killed and fails the test."""
    data = b""
    while True:
        if not select.select([read_end], [], [], timeout)[0]:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the forked child said nothing for {timeout} s: it hangs")
        piece = os.read(read_end, 65536)
        if not piece:
            break
        data += piece
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    problems: List[str] = json.loads(data)
    return problems
