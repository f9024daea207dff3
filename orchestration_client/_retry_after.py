"""What a reply's ``Retry-After`` header asks for, and the longest wait the client makes.

A leaf with no imports from this package: the retry policy (``_http._retry``) reads it to
decide how long to wait, and the status error (``_exceptions``) to say what the server asked
for when it asked for more than ``MAX_WAIT``.
"""

import email.utils
import math
import time
from typing import Any, Optional

__all__ = ["MAX_WAIT", "asked_wait", "parse_retry_after"]

#: The longest the client waits before one retry, in seconds, whatever the server asks.
MAX_WAIT = 60.0


def parse_retry_after(value: str) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` value, or None when it can't be read.

    Accepts integer or float seconds and HTTP dates (a date without a zone is UTC).
    Negative waits become 0.
    """
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        if parsed[9] is None:
            parsed = (*parsed[:9], 0)
        try:
            seconds = email.utils.mktime_tz(parsed) - time.time()
        except (OverflowError, ValueError):
            return None
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def asked_wait(headers: Any) -> Optional[float]:
    """The wait a reply's ``Retry-After`` header asks for (None if absent or unreadable)."""
    header = headers.get("Retry-After") if headers is not None else None
    return parse_retry_after(header) if isinstance(header, str) and header else None
