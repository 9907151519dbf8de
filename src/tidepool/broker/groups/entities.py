"""Build kio response entities of any version from one version-independent description.

Each (api_key, version) is its own kio class with its own field set and nullability, so handlers describe a
response once as plain values (nested structs as mappings) and `build` keeps just the fields the class has.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any

from kio.schema.errors import ErrorCode

_NO_THROTTLE = datetime.timedelta(0)


@functools.cache
def _field_specs(cls: type) -> tuple[tuple[str, Any], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def _is_optional(annotation: Any) -> bool:
    return isinstance(annotation, types.UnionType) and type(None) in typing.get_args(annotation)


def _strip_optional(annotation: Any) -> Any:
    if isinstance(annotation, types.UnionType):
        rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return rest[0]
    return annotation


def _convert(annotation: Any, value: Any) -> Any:
    if value is None:
        if _is_optional(annotation):
            return None
        # Kafka writes a null string as "" in versions where the field is not nullable yet (JoinGroup v<7).
        base = _strip_optional(annotation)
        if base is str or (isinstance(base, type) and issubclass(base, str)):
            return base("")
        if base is bytes:
            return b""
        raise TypeError(f"None for non-nullable {annotation}")
    base = _strip_optional(annotation)
    if typing.get_origin(base) is tuple:
        element = typing.get_args(base)[0]
        return tuple(_convert(element, item) for item in value)
    if dataclasses.is_dataclass(base) and isinstance(value, Mapping):
        return build(typing.cast(type, base), **value)
    if base is ErrorCode:
        return ErrorCode(int(value))
    if isinstance(base, type) and base is not bool and base is not datetime.timedelta and not isinstance(value, base):
        return base(value)
    return value


def build(cls: type, /, **values: Any) -> Any:
    """An instance of kio entity `cls` from `values`; keys the class lacks are dropped, missing keys default.

    `throttle_time` defaults to zero; nested entities may be given as mappings, error codes as ints.
    """
    kwargs: dict[str, Any] = {}
    for name, annotation in _field_specs(cls):
        if name in values:
            kwargs[name] = _convert(annotation, values[name])
        elif name == "throttle_time":
            kwargs[name] = _NO_THROTTLE
    return cls(**kwargs)


def has_field(cls: type, name: str) -> bool:
    """Whether kio entity `cls` (one version of a message) carries field `name`."""
    return any(field_name == name for field_name, _ in _field_specs(cls))
