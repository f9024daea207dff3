"""JSON in and out: request bodies are encoded once and checked against their own schema
before sending; replies are decoded from bytes by one reusable typed decoder per type.

Subclasses of ``str``, ``int`` and ``float`` (a ``str`` subclass, ``numpy.float64``) are
sent as their plain value, as Prefect's pydantic models do. Values JSON cannot hold are
refused, naming their path, where msgspec would silently change them: ``NaN`` and infinities
(written as ``null``) and bytes (written as base64 text, which a ``str`` field accepts).
"""

import math
from typing import Any, Generic, List, Optional, Type, TypeVar, Union
from urllib.parse import urlsplit

import msgspec
import requests

from .._exceptions import RequestValidationError, ResponseDecodeError

__all__ = ["BodyEncoder", "ReplyDecoder"]

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


def _plain_value(value: Any) -> Union[str, int, float]:
    """The plain ``str``/``int``/``float`` inside a subclass instance msgspec cannot encode."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value)
    raise TypeError(f"Encoding objects of type {type(value).__name__} is unsupported")


_BYTES = (bytes, bytearray, memoryview)


def _not_json(value: Any, path: str) -> Optional[str]:
    """What is wrong with the first value JSON cannot hold inside ``value`` (built-in types
    only), with its path; ``None`` if there is none."""
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} is not a finite number"
    if isinstance(value, _BYTES):
        return f"{path} is bytes, which JSON has no type for (decode it to str)"
    items: List[Any]
    if isinstance(value, dict):
        items = [(f"{path}.{key}", item) for key, item in value.items()]
    elif isinstance(value, list):
        items = [(f"{path}[{index}]", item) for index, item in enumerate(value)]
    else:
        return None
    for item_path, item in items:
        found = _not_json(item, item_path)
        if found is not None:
            return found
    return None


class BodyEncoder(Generic[T]):
    """Encodes a request body and proves it reads back as ``T``, so that a wrong type deep
    inside a filter or state fails here, naming its path, instead of as a 422."""

    def __init__(self, body_type: Type[T]) -> None:
        self._check = msgspec.json.Decoder(body_type)

    def encode(self, body: T, what: str) -> bytes:
        try:
            plain = msgspec.to_builtins(body, builtin_types=_BYTES, enc_hook=_plain_value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise RequestValidationError(f"{what} cannot be sent as JSON: {exc}") from None
        bad = _not_json(plain, "$")
        if bad is not None:
            raise RequestValidationError(f"{what} cannot be sent as JSON: {bad}")
        try:
            data = _encoder.encode(plain)
        except (TypeError, ValueError, OverflowError) as exc:
            raise RequestValidationError(f"{what} cannot be sent as JSON: {exc}") from None
        try:
            self._check.decode(data)
        except msgspec.ValidationError as exc:
            raise RequestValidationError(f"invalid {what}: {exc}") from None
        return data


class ReplyDecoder(Generic[T]):
    """Decodes a reply body into ``T``; a mismatch raises ``ResponseDecodeError`` naming the
    endpoint and the failing path. Decoding is non-strict so that durations sent as float
    seconds become ``timedelta``; shapes and types are still checked."""

    def __init__(self, reply_type: Any, name: str) -> None:
        self._decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(reply_type, strict=False)
        self._name = name

    def decode(self, response: requests.Response) -> T:
        try:
            decoded: T = self._decoder.decode(response.content)
            return decoded
        except (msgspec.DecodeError, RecursionError) as exc:
            reason = "JSON nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            request = response.request
            endpoint = f"{request.method} {urlsplit(request.url or '').path}"
            body = response.content
            shown = "an empty body" if not body else f"a body starting {body[:120]!r}"
            raise ResponseDecodeError(
                f"{endpoint} answered {response.status_code} with {shown}, "
                f"which is not a valid {self._name}: {reason}",
                endpoint=endpoint,
                response=response,
            ) from None
