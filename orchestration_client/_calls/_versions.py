"""Just enough PEP 440 to compare a server's Prefect version with ours (no ``packaging``
dependency): ``3.9.1`` < ``3.10.0rc1`` < ``3.10.0`` < ``3.10.0.post1``."""

import re
from typing import Tuple, Union

__all__ = ["major_version", "version_key"]

_PATTERN = re.compile(
    r"""^\s*v?
    (?:(?P<epoch>\d+)!)?
    (?P<release>\d+(?:\.\d+)*)
    (?:[-_.]?(?P<pre>a|alpha|b|beta|c|rc|pre|preview)[-_.]?(?P<pre_n>\d*))?
    (?:(?:[-_.]?(?:post|rev|r)[-_.]?(?P<post_n>\d*))|-(?P<post_implicit>\d+))?
    (?:[-_.]?(?P<dev>dev)[-_.]?(?P<dev_n>\d*))?
    (?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?
    \s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_PRE_RANK = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}

Key = Tuple[int, Tuple[int, ...], Tuple[int, int], int, Union[int, float]]


def version_key(text: str) -> Key:
    """A sortable key for a PEP 440 version string; ``ValueError`` if it is not one."""
    match = _PATTERN.match(text)
    if match is None:
        raise ValueError(f"not a PEP 440 version: {text!r}")
    release = tuple(int(part) for part in match["release"].split("."))
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]
    post_text = match["post_n"] if match["post_n"] is not None else match["post_implicit"]
    has_post = post_text is not None
    if match["pre"]:
        pre = (_PRE_RANK[match["pre"].lower()], int(match["pre_n"] or 0))
    elif match["dev"] and not has_post:
        pre = (-1, 0)  # 1.0.dev1 sorts before 1.0a1
    else:
        pre = (3, 0)  # a final release sorts after its pre-releases
    post = int(post_text or 0) if has_post else -1
    dev: Union[int, float] = int(match["dev_n"] or 0) if match["dev"] else float("inf")
    return (int(match["epoch"] or 0), release, pre, post, dev)


def major_version(text: str) -> int:
    return version_key(text)[1][0]
