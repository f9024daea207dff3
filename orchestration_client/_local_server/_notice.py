"""The notice that a local server is in use because no URL was found: visible by default,
once per process, without configuring anybody's logging.

It is an ordinary WARNING on the logger ``orchestration_client.local_server``, so
applications that configure logging get it through their own handlers and format. When no
handler but a ``NullHandler`` would receive it (a script that never configured logging,
where Python's last-resort handler stays silent because the package logger has a
``NullHandler``), ``_StderrWhenUnhandled`` writes it to stderr instead. Either way it
passes through the logger's level and filters first, so any of these silences it::

    logging.getLogger("orchestration_client.local_server").setLevel(logging.ERROR)
    logging.getLogger("orchestration_client").setLevel(logging.ERROR)  # the whole package
    logging.disable(logging.WARNING)
"""

import contextlib
import logging
import sys
import threading
from typing import Optional, Set

from ._common import logger

__all__ = ["announce", "install"]

_announced: Set[str] = set()
_lock = threading.Lock()


class _StderrWhenUnhandled(logging.Handler):
    """Writes a record to stderr only when no other real handler will see it."""

    def emit(self, record: logging.LogRecord) -> None:
        if _handled_elsewhere(logging.getLogger(record.name)):
            return
        stream = sys.stderr
        if stream is None:  # pythonw, or stderr closed on purpose
            return
        try:
            stream.write(f"orchestration_client: {record.getMessage()}\n")
            stream.flush()
        except Exception:  # stderr closed or broken: nowhere to say it, and never an error
            pass


def _handled_elsewhere(start: logging.Logger) -> bool:
    """A handler other than a NullHandler or this one is on the way to the root logger."""
    current: Optional[logging.Logger] = start  # the walk Logger.callHandlers makes
    while current is not None:
        for handler in current.handlers:
            if not isinstance(handler, (logging.NullHandler, _StderrWhenUnhandled)):
                return True
        current = current.parent if current.propagate else None
    return False


def install() -> None:
    """Make sure messages reach stderr when nothing else would show them (see above)."""
    with _lock:
        if not any(isinstance(h, _StderrWhenUnhandled) for h in logger.handlers):
            logger.addHandler(_StderrWhenUnhandled(logging.WARNING))


def announce(message: str, key: str) -> None:
    """Log ``message`` at WARNING, once per process for each ``key``. Never raises: a
    handler that fails (a closed stream) must not fail the call that had something to say."""
    with _lock:
        if key in _announced:
            return
        _announced.add(key)
    install()
    with contextlib.suppress(Exception):
        logger.warning("%s", message)
