"""JSON in and out: request bodies are encoded once and checked against their own schema
before sending; replies are decoded from bytes by one reusable typed decoder per type."""

from typing import Any, Generic, Type, TypeVar
from urllib.parse import urlsplit

import msgspec
import requests

from ._exceptions import RequestValidationError, ResponseDecodeError

__all__ = ["BodyEncoder", "ReplyDecoder"]

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


class BodyEncoder(Generic[T]):
    """Encodes a request body and proves it reads back as ``T``, so that a wrong type deep
    inside a filter or state fails here, naming its path, instead of as a 422."""

    def __init__(self, body_type: Type[T]) -> None:
        self._check = msgspec.json.Decoder(body_type)

    def encode(self, body: T, what: str) -> bytes:
        try:
            data = _encoder.encode(body)
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
