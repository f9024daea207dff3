"""The shared base of the public models: a keyword-only ``msgspec.Struct`` that also answers
the handful of pydantic calls user code makes on Prefect's models (``model_dump``,
``model_dump_json``, ``model_copy``, ``model_validate``, ``model_validate_json``) and compares
the way Prefect's models do. Everything is done by msgspec; nothing here knows a field name
except through ``_reset_fields``.

Output matches Prefect's for the same object: ``mode="python"`` keeps UUIDs, datetimes,
timedeltas and enum members; ``mode="json"`` gives JSON types with durations as float seconds
(Prefect's models set ``ser_json_timedelta="float"``). A tagged model (task inputs,
orchestration details) shows its tag as the first key, as Prefect's ``Literal`` field does.
"""

import copy
import datetime
from typing import (
    Any,
    ClassVar,
    Collection,
    Dict,
    FrozenSet,
    Mapping,
    Optional,
    Type,
    TypeVar,
    Union,
)

import msgspec

__all__ = ["Model"]

M = TypeVar("M", bound="Model")

_json = msgspec.json.Encoder()


def _plain(value: Any, json: bool, drop_none: bool) -> Any:
    """``value`` with every nested model turned into a dict (and, for JSON, every duration
    into float seconds); other leaves are left for ``msgspec.to_builtins``. ``drop_none``
    leaves out model fields that are ``None`` (not ``None`` inside plain dicts or lists)."""
    if isinstance(value, msgspec.Struct):
        out: Dict[str, Any] = {}
        config = value.__struct_config__
        if config.tag_field is not None:
            out[config.tag_field] = config.tag
        for name in value.__struct_fields__:
            item = getattr(value, name)
            if item is not None or not drop_none:
                out[name] = _plain(item, json, drop_none)
        return out
    if isinstance(value, dict):
        return {key: _plain(item, json, drop_none) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item, json, drop_none) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain(item, json, drop_none) for item in value)
    if json and isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return value


Selection = Union[Collection[str], Mapping[str, Any]]


def _pick(value: Any, selection: Any, *, keep: bool) -> Any:
    """pydantic's ``include`` (``keep``) or ``exclude`` applied to a dumped value: a set of
    keys, or a mapping from key to ``True``/``...`` (the whole value) or a nested selection.
    A list is selected item by item (``"__all__"`` applies to every index)."""
    if isinstance(value, list):
        if isinstance(selection, Mapping):
            every = selection.get("__all__")
            picked = []
            for index, item in enumerate(value):
                rule = selection.get(index, every)
                if rule is None:
                    if keep:
                        continue
                    picked.append(item)
                elif rule is True or rule is Ellipsis:
                    if keep:
                        picked.append(item)
                else:
                    picked.append(_pick(item, rule, keep=keep))
            return picked
        return value
    if not isinstance(value, dict):
        return value
    rules: Mapping[Any, Any] = (
        selection if isinstance(selection, Mapping) else {key: True for key in selection}
    )
    out: Dict[Any, Any] = {}
    for key, item in value.items():
        rule = rules.get(key)
        if rule is None or rule is False:
            if not keep:
                out[key] = item
        elif rule is True or rule is Ellipsis:
            if keep:
                out[key] = item
        else:  # a nested selection
            out[key] = _pick(item, rule, keep=keep)
    return out


def _exact(value: Any) -> Any:
    """``value`` with datetime subclasses (Prefect's pendulum ``DateTime``) made plain
    ``datetime``, which is all msgspec accepts."""
    if isinstance(value, dict):
        return {key: _exact(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_exact(item) for item in value)
    if isinstance(value, datetime.datetime) and type(value) is not datetime.datetime:
        return datetime.datetime(
            *value.timetuple()[:6], value.microsecond, value.tzinfo, fold=value.fold
        )
    return value


class Model(msgspec.Struct, kw_only=True):
    """Keyword-only construction (defaults may sit beside required fields), pydantic-style
    helpers, and Prefect's equality: two models are equal when their ``model_dump`` is,
    leaving out ``_reset_fields`` (``id``, ``created``, ``updated`` for runs and states);
    a model also equals the dict of its ``model_dump``."""

    _reset_fields: ClassVar[FrozenSet[str]] = frozenset()

    def model_dump(
        self,
        *,
        mode: str = "python",
        include: Optional[Selection] = None,
        exclude: Optional[Selection] = None,
        exclude_none: bool = False,
    ) -> Dict[str, Any]:
        """The model as a dict; ``mode="json"`` gives only JSON types (``ValueError`` for a
        value that has none, as pydantic's error is). ``include`` and ``exclude`` are field
        names, or pydantic's nested form (``{"state": {"data"}}``, ``True`` for a whole
        field); ``exclude_none`` drops fields that are ``None``."""
        if mode not in ("python", "json"):
            raise ValueError(f"mode must be 'python' or 'json', got {mode!r}")
        out: Dict[str, Any] = _plain(self, mode == "json", exclude_none)
        if include is not None:
            out = _pick(out, include, keep=True)
        if exclude:
            out = _pick(out, exclude, keep=False)
        if mode == "json":
            try:
                converted: Dict[str, Any] = msgspec.to_builtins(out)
            except TypeError as exc:  # a value JSON cannot hold, e.g. an exception as data
                raise ValueError(f"{type(self).__name__} cannot be dumped as JSON: {exc}") from exc
            return converted
        return out

    def model_dump_json(
        self,
        *,
        indent: Optional[int] = None,
        include: Optional[Selection] = None,
        exclude: Optional[Selection] = None,
        exclude_none: bool = False,
    ) -> str:
        """The model as a JSON string (non-finite floats become ``null``, as in pydantic)."""
        data = self.model_dump(
            mode="json", include=include, exclude=exclude, exclude_none=exclude_none
        )
        encoded = _json.encode(data)
        if indent is not None:
            encoded = msgspec.json.format(encoded, indent=indent)
        return encoded.decode("utf-8")

    def model_copy(self: M, *, update: Optional[Mapping[str, Any]] = None, deep: bool = False) -> M:
        """A copy with ``update`` applied (field names only; values are not re-checked,
        as in pydantic). ``deep=True`` copies nested values too."""
        source = copy.deepcopy(self) if deep else self
        return msgspec.structs.replace(source, **dict(update or {}))

    @classmethod
    def model_validate(cls: Type[M], obj: Any) -> M:
        """Build the model from a dict, from another object's attributes (a Prefect model
        works), or return ``obj`` itself if it already is one. Raises ``ValueError`` naming
        the field that does not fit, as pydantic's ``ValidationError`` (a ``ValueError``)."""
        if isinstance(obj, cls):
            return obj
        if not isinstance(obj, Mapping) and callable(getattr(obj, "model_dump", None)):
            obj = obj.model_dump()  # a pydantic model: read its fields as a dict
        try:
            return msgspec.convert(_exact(obj), cls, strict=False, from_attributes=True)
        except msgspec.ValidationError as exc:
            raise ValueError(f"invalid {cls.__name__}: {exc}") from exc

    @classmethod
    def model_validate_json(cls: Type[M], data: Union[str, bytes, bytearray]) -> M:
        """Decode JSON text into the model; ``ValueError`` if it is not valid JSON or does
        not fit."""
        try:
            return msgspec.json.decode(data, type=cls, strict=False)
        except msgspec.DecodeError as exc:
            raise ValueError(f"invalid {cls.__name__} JSON: {exc}") from exc

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        mine = self.model_dump(exclude=self._reset_fields)
        if isinstance(other, Model):
            return mine == other.model_dump(exclude=other._reset_fields)
        return mine == other

    def __ne__(self, other: object) -> bool:
        return not self == other
