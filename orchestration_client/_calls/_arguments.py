"""Argument checks for the client's methods: bad input stops here, before any request,
with a TypeError for a wrong type and a ValueError for a wrong value."""

import math
import uuid
from typing import Any, Iterable, List, Optional, Type, TypeVar, Union

from .._exceptions import RequestValidationError
from .._models._bodies import StateCreate
from .._models._schemas import RetryDelay, State, TaskRunPolicy
from .._models._state_data import sent_data

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_NAME_BYTES",
    "MAX_RETRY_DELAYS",
    "as_uuid",
    "bounded",
    "count",
    "instance_or_none",
    "optional_str",
    "retry_delay",
    "seconds",
    "state_create",
    "strings",
    "task_policy",
]

F = TypeVar("F")

MAX_RETRY_DELAYS = 50
# PostgreSQL btree index entries are limited to about 2704 bytes, and Prefect indexes the
# task-run name and (flow_run_id, task_key, dynamic_key). Longer values fail there (SQLite
# takes them), so they are refused here, everywhere, before sending.
MAX_NAME_BYTES = 2000
MAX_KEY_BYTES = 1000


def as_uuid(value: Any, name: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            raise RequestValidationError(f"{name} must be a UUID, got {value!r}") from None
    raise RequestValidationError(
        f"{name} must be a UUID or a UUID string, got {type(value).__name__}"
    )


def optional_str(value: Any, name: str) -> Optional[str]:
    if value is None or isinstance(value, str):
        return value
    raise RequestValidationError(f"{name} must be a str or None, got {type(value).__name__}")


def bounded(value: Optional[str], name: str, limit: int) -> Optional[str]:
    """``value`` if it fits a PostgreSQL index entry (see ``MAX_NAME_BYTES``)."""
    if value is not None and len(value) * 4 > limit and len(value.encode("utf-8")) > limit:
        raise RequestValidationError(
            f"{name} is {len(value.encode('utf-8'))} bytes long; the limit is {limit} bytes "
            "(Prefect indexes it, and PostgreSQL refuses longer index entries)"
        )
    return value


def instance_or_none(value: Any, expected: Type[F], name: str) -> Optional[F]:
    if value is None or isinstance(value, expected):
        return value
    raise RequestValidationError(
        f"{name} must be a {expected.__name__} or None, got {type(value).__name__}"
    )


def count(value: Any, name: str, *, allow_none: bool) -> Optional[int]:
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise RequestValidationError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise RequestValidationError(f"{name} must be >= 0, got {value}")
    return value


def strings(value: Any, name: str) -> List[str]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise RequestValidationError(
            f"{name} must be a collection of str, got {type(value).__name__}"
        )
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise RequestValidationError(f"{name} must contain only str, got {type(item).__name__}")
    return items


def seconds(value: Any, name: str) -> Union[int, float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestValidationError(
            f"{name} must be a number of seconds, got {type(value).__name__}"
        )
    if not math.isfinite(value) or value < 0:
        raise RequestValidationError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def retry_delay(value: Any) -> RetryDelay:
    """Prefect truncates delays to whole seconds before sending: 1.5 -> 1, [1.5, 3] -> [1, 3]."""
    name = "task.retry_delay_seconds"
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_RETRY_DELAYS:
            raise RequestValidationError(f"{name} may list at most {MAX_RETRY_DELAYS} delays")
        return [int(seconds(item, name)) for item in value]
    return int(seconds(value, name))


def task_policy(task: Any) -> TaskRunPolicy:
    retries = task.retries
    if retries is not None:
        count(retries, "task.retries", allow_none=False)
    jitter = task.retry_jitter_factor
    if jitter is not None:
        seconds(jitter, "task.retry_jitter_factor")
    return TaskRunPolicy(
        retries=retries,
        retry_delay=retry_delay(task.retry_delay_seconds),
        retry_jitter_factor=jitter,
    )


def state_create(state: Any, name: str = "state") -> StateCreate:
    """The state as proposed to the server. Its ``data`` stays on the local object, as in
    Prefect: see ``_models._state_data``."""
    if not isinstance(state, State):
        raise RequestValidationError(
            f"{name} must be a State (see orchestration_client.states), got {type(state).__name__}"
        )
    return StateCreate(
        type=state.type,
        name=state.name,
        message=state.message,
        state_details=state.state_details,
        data=sent_data(state.data),
    )
