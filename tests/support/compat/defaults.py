"""Our request defaults against a Prefect server's own request models.

Every field we omit while it holds its default must mean the same to the server: its
default has to be ours. ``server_defaults_script()`` runs inside a server's interpreter
(any release) and prints that server's defaults in the same ``Class.field`` keys as
``our_defaults()``; a key it lacks is a field the release does not know yet."""

import enum
from typing import Any, Dict

import msgspec

#: Body fields compared with the server's action models; ``TaskRunCreate.name`` is left
#: out: the server turns both null and absent into a random name.
BODY_FIELDS = {
    "TaskRunCreate": ["id", "state", "flow_run_id", "cache_key", "cache_expiration",
                      "task_version", "tags", "labels", "task_inputs"],
    "StateCreate": ["name", "message", "data"],
}  # fmt: skip


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    return msgspec.to_builtins(value)


def our_defaults() -> Dict[str, Any]:
    from orchestration_client._models import _bodies, _filters

    found: Dict[str, Any] = {}
    for name in _filters.__all__:
        cls = getattr(_filters, name)
        if isinstance(cls, type) and issubclass(cls, msgspec.Struct):
            for field in msgspec.structs.fields(cls):
                found[f"{name}.{field.name}"] = _plain(field.default)
    for name, wanted in BODY_FIELDS.items():
        fields = {f.name: f for f in msgspec.structs.fields(getattr(_bodies, name))}
        for key in wanted:
            field = fields[key]
            value = (field.default_factory() if field.default is msgspec.NODEFAULT
                     else field.default)  # fmt: skip
            found[f"{name}.{key}"] = None if value is msgspec.UNSET else _plain(value)
    return found


def server_defaults_script() -> str:
    return f"""
import enum, json
from pydantic import BaseModel
import prefect.server.schemas.actions as actions
import prefect.server.schemas.filters as filters

def plain(field):
    if field.is_required():
        return "<required>"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value.value if isinstance(value, enum.Enum) else value

found = {{}}
for name in dir(filters):
    cls = getattr(filters, name)
    if isinstance(cls, type) and issubclass(cls, BaseModel) and cls.__module__ == filters.__name__:
        for key, field in cls.model_fields.items():
            found[name + "." + key] = plain(field)
for name, keys in {BODY_FIELDS!r}.items():
    fields = getattr(actions, name).model_fields
    for key in keys:
        if key in fields:
            found[name + "." + key] = plain(fields[key])
print(json.dumps(found, default=repr))
"""
