"""The files Prefect 3 reads its settings from, found and parsed as Prefect does.

* ``.env``, ``prefect.toml`` and ``pyproject.toml`` (table ``[tool.prefect]``) in the
  current directory only;
* the profiles file: ``PREFECT_PROFILES_PATH`` (environment, then ``.env``), else
  ``profiles_path`` in ``prefect.toml`` or ``[tool.prefect]``, else
  ``$PREFECT_HOME/profiles.toml``, else ``~/.prefect/profiles.toml``; with none of them,
  Prefect's built-in default profile. The active profile is ``PREFECT_PROFILE``, else the
  file's ``active`` key; an unknown name falls back to the built-in default, as in Prefect.
  Prefect ignores profiles entirely in test mode (any ``PREFECT_*TEST_MODE`` variable set).

Each file is parsed once and parsed again only when its size, inode or modification time
changes, so building a client per call costs a few ``stat`` calls. A file that cannot be
parsed raises ``ConfigFileError`` naming the file and line; Prefect only warns about a
broken profiles file and then silently uses none, which is how a migrated script ends up
on a local server.
"""

import logging
import os
import re
import stat
import threading
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Set, Tuple

__all__ = [
    "BUILTIN_PROFILE",
    "ConfigFileError",
    "Profile",
    "find_profile",
    "read_dotenv",
    "read_toml",
    "toml_table",
]

logger = logging.getLogger("orchestration_client")

#: Prefect's packaged ``profiles.toml`` makes ``ephemeral`` active, and that is the only
#: profile it ever uses from that file.
BUILTIN_PROFILE: Dict[str, Any] = {"PREFECT_SERVER_EPHEMERAL_ENABLED": "true"}
_TEST_MODE_VARIABLES = (
    "PREFECT_TEST_MODE",
    "PREFECT_UNIT_TEST_MODE",
    "PREFECT_TESTING_UNIT_TEST_MODE",
    "PREFECT_TESTING_TEST_MODE",
)


class ConfigFileError(ValueError):
    """A settings file that cannot be read or parsed."""


class Profile(NamedTuple):
    """The active profile's settings and a phrase saying where they came from."""

    values: Mapping[str, Any]
    description: str


# ---- cached reading --------------------------------------------------------------------

_StatKey = Tuple[int, int, int, int]
_cache: Dict[Tuple[str, str], Tuple[_StatKey, Any]] = {}
_cache_lock = threading.Lock()
_CACHE_SIZE = 64


def _cached(kind: str, path: str, parse: Callable[[str, str], Any]) -> Optional[Any]:
    """``parse(text, path)`` of the regular file at ``path``, or None if there is none."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        return None
    key = (info.st_mtime_ns, info.st_size, info.st_ino, info.st_dev)
    with _cache_lock:
        hit = _cache.get((kind, path))
    if hit is not None and hit[0] == key:
        return hit[1]
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot be read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigFileError(f"{path}, line {line}: not valid UTF-8") from None
    value = parse(text, path)
    with _cache_lock:
        if len(_cache) >= _CACHE_SIZE:  # many working directories over time: start afresh
            _cache.clear()
        _cache[(kind, path)] = (key, value)
    return value


def _parse_toml(text: str, path: str) -> Dict[str, Any]:
    import msgspec.toml  # tomllib on 3.11+, tomli below; loaded only when a file exists

    try:
        data: Dict[str, Any] = msgspec.toml.decode(text)
    except msgspec.DecodeError as exc:
        raise ConfigFileError(f"{path}: invalid TOML: {exc}") from None
    return data


def read_toml(path: str) -> Optional[Dict[str, Any]]:
    """The TOML document at ``path``, or None if there is no such file."""
    data: Optional[Dict[str, Any]] = _cached("toml", path, _parse_toml)
    return data


def toml_table(document: Optional[Mapping[str, Any]], path: Tuple[str, ...]) -> Optional[Any]:
    """The value at ``path`` in a TOML document, or None."""
    value: Any = document
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


# ---- .env ------------------------------------------------------------------------------
# The python-dotenv dialect that pydantic-settings (and so Prefect) reads: optional
# ``export``, ``KEY=value`` with single-, double- or unquoted values, ``#`` comments and
# ``${NAME}`` / ``${NAME:-default}`` expansion from the environment and earlier lines.

_BLANK = re.compile(r"\s*")
_COMMENT_LINE = re.compile(r"#[^\r\n]*(?:\r\n|\n|\r|$)")
_BINDING = re.compile(
    r"""
    (?:export[^\S\r\n]+)?
    (?:'(?P<qkey>[^']+)'|(?P<key>[^=\#\s]+))
    [^\S\r\n]*
    (?:
        =(?P<gap>[^\S\r\n]*)
        (?:
            '(?P<single>(?:\\.|[^'\\])*)'
          | "(?P<double>(?:\\.|[^"\\])*)"
          | (?P<bare>(?!['"])[^\r\n]*)
        )
    )?
    (?:[^\S\r\n]*\#[^\r\n]*)?
    [^\S\r\n]*(?:\r\n|\n|\r|$)
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b", "f": "\f", "n": "\n",
            "r": "\r", "t": "\t", "v": "\v"}  # fmt: skip
_DOUBLE_ESCAPE = re.compile(r"\\([\\'\"abfnrtv])")
_SINGLE_ESCAPE = re.compile(r"\\([\\'])")
_VARIABLE = re.compile(r"\$\{(?P<name>[^}:]*)(?::-(?P<default>[^}]*))?\}")

_DotenvLines = List[Tuple[str, Optional[str]]]


def _parse_dotenv(text: str, path: str) -> _DotenvLines:
    bindings: _DotenvLines = []
    position = 0
    while True:
        position = _BLANK.match(text, position).end()  # type: ignore[union-attr]
        if position >= len(text):
            return bindings
        comment = _COMMENT_LINE.match(text, position)
        if comment is not None:
            position = comment.end()
            continue
        found = _BINDING.match(text, position)
        if found is None:
            line = text.count("\n", 0, position) + 1
            statement = text[position:].splitlines()[0][:40]
            raise ConfigFileError(
                f"{path}, line {line}: cannot parse {statement!r}; expected NAME=value"
            )
        position = found.end()
        key = found["qkey"] or found["key"]
        value: Optional[str]
        if found["single"] is not None:
            value = _SINGLE_ESCAPE.sub(lambda m: m[1], found["single"])
        elif found["double"] is not None:
            value = _DOUBLE_ESCAPE.sub(lambda m: _ESCAPES[m[1]], found["double"])
        elif found["bare"] is not None:
            bare = found["bare"]
            # "NAME= # note" is an empty value; "NAME=#x" keeps the "#x".
            value = "" if found["gap"] and bare.startswith("#") else bare
            value = re.sub(r"\s+#.*", "", value).rstrip()
        else:
            value = None  # a bare NAME line: present, without a value
        bindings.append((key, value))


def read_dotenv(path: str, environ: Mapping[str, str]) -> Optional[Dict[str, Optional[str]]]:
    """The variables a ``.env`` file sets (names as written), or None if there is none."""
    bindings: Optional[_DotenvLines] = _cached("dotenv", path, _parse_dotenv)
    if bindings is None:
        return None
    values: Dict[str, Optional[str]] = {}
    for key, value in bindings:
        if value is not None and "${" in value:
            value = _VARIABLE.sub(lambda m: _expand(m, environ, values), value)
        values[key] = value
    return values


def _expand(
    found: "re.Match[str]", environ: Mapping[str, str], earlier: Mapping[str, Optional[str]]
) -> str:
    name = found["name"]
    if name in earlier:
        return earlier[name] or ""
    if name in environ:
        return environ[name]
    return found["default"] or ""


# ---- profiles --------------------------------------------------------------------------


def find_profile(
    environ: Mapping[str, str],
    cwd: str,
    dotenv: Optional[Mapping[str, Optional[str]]],
    prefect_toml: Optional[Mapping[str, Any]],
    pyproject: Optional[Mapping[str, Any]],
) -> Profile:
    """The active profile, chosen as Prefect 3.9's settings loader chooses it."""
    test_mode = [name for name in _TEST_MODE_VARIABLES if environ.get(name)]
    if test_mode:
        return Profile({}, f"no profile ({test_mode[0]} is set: Prefect's test mode)")
    path = _profiles_path(environ, cwd, dotenv, prefect_toml, pyproject)
    data = read_toml(path) if path is not None else None
    if data is None:
        where = path or os.path.join(_home(environ), ".prefect", "profiles.toml")
        return Profile(
            BUILTIN_PROFILE, f"Prefect's default profile 'ephemeral' ({where} does not exist)"
        )
    active = environ.get("PREFECT_PROFILE") or data.get("active")
    profiles = data.get("profiles")
    profiles = profiles if isinstance(profiles, dict) else {}
    chosen = profiles.get(active) if isinstance(active, str) else None
    if not isinstance(chosen, dict):
        named = (
            f"PREFECT_PROFILE={active!r}" if environ.get("PREFECT_PROFILE") else
            f"active = {active!r}" if active else "no active profile"
        )  # fmt: skip
        description = f"Prefect's default profile 'ephemeral' ({named}: no such profile in {path})"
        _warn_once(description)
        return Profile(BUILTIN_PROFILE, description)
    return Profile(chosen, f"profile {active!r} of {path}")


def _home(environ: Mapping[str, str]) -> str:
    return environ.get("HOME") or os.path.expanduser("~")


def _profiles_path(
    environ: Mapping[str, str],
    cwd: str,
    dotenv: Optional[Mapping[str, Optional[str]]],
    prefect_toml: Optional[Mapping[str, Any]],
    pyproject: Optional[Mapping[str, Any]],
) -> Optional[str]:
    """Where the profiles file is, or None for Prefect's built-in default."""
    candidates: List[Tuple[Any, str]] = [
        (environ.get("PREFECT_PROFILES_PATH"), "PREFECT_PROFILES_PATH"),
        ((dotenv or {}).get("PREFECT_PROFILES_PATH"), "PREFECT_PROFILES_PATH in .env"),
        (toml_table(prefect_toml, ("profiles_path",)), "profiles_path in prefect.toml"),
        (
            toml_table(pyproject, ("tool", "prefect", "profiles_path")),
            "profiles_path in [tool.prefect] of pyproject.toml",
        ),
    ]
    for value, name in candidates:
        if value:
            if not isinstance(value, str):
                raise ConfigFileError(f"{name} must be a path string, got {value!r}")
            return os.path.join(cwd, value)
    home = environ.get("PREFECT_HOME")
    if home:
        return os.path.join(cwd, home, "profiles.toml")
    default = os.path.join(_home(environ), ".prefect", "profiles.toml")
    return default if os.path.exists(default) else None


_warned: Set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning("using %s", message)
