"""Request decoding and response encoding, table-driven by (api_key, version), on kio's generated entities.

`decode_request` turns one frame into a `Request` (kio header + body entity) or a `Rejection` saying how the
server must answer a frame it cannot serve: a v0 ApiVersions error reply (the fallback real clients rely on) or a
closed connection (what Apache Kafka does for an unknown API, an unsupported version or an unparsable body).
`build` turns a version-agnostic nested dict into the kio entity of one version, dropping keys that version lacks,
so a handler describes a response once and every advertised version gets its own field set and nullability.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import struct
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer

API_VERSIONS_KEY = 18
_PEEK = struct.Struct(">hhi")
_NULL_UUID = uuid.UUID(int=0)

Ranges = Mapping[int, tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Request:
    """One decoded request: kio's request header entity and the body entity of (api_key, version)."""

    api_key: int
    api_version: int
    correlation_id: int
    header: Any
    body: Any


@dataclass(frozen=True, slots=True)
class Rejection:
    """A frame the server does not serve. `reply` is bytes to send back (then carry on), or None: close."""

    reason: str
    correlation_id: int | None
    reply: bytes | None


def peek_header(frame: bytes) -> tuple[int, int, int] | None:
    """(api_key, api_version, correlation_id) of a frame, or None if it is too short to have them."""
    if len(frame) < _PEEK.size:
        return None
    key, version, correlation_id = _PEEK.unpack_from(frame)
    return key, version, correlation_id


def decode_request(frame: bytes, ranges: Ranges) -> Request | Rejection:
    """Decode one request frame against the supported (api_key → (min, max)) ranges."""
    peeked = peek_header(frame)
    if peeked is None:
        return Rejection("frame shorter than a request header", None, None)
    key, version, correlation_id = peeked
    supported = ranges.get(key)
    if supported is None:
        return Rejection(f"unsupported api_key {key}", correlation_id, None)
    low, high = supported
    if not low <= version <= high:
        if key == API_VERSIONS_KEY and version > high:
            # KIP-511: answer a too-new ApiVersions in v0 format with UNSUPPORTED_VERSION and our ranges,
            # so the client retries with a version we speak.
            reply = encode_response(correlation_id, api_versions_response(0, ranges, ErrorCode.unsupported_version))
            return Rejection(f"ApiVersions v{version} above v{high}", correlation_id, reply)
        return Rejection(f"api_key {key} version {version} outside {low}..{high}", correlation_id, None)
    try:
        body_cls = load_request_schema(key, version)
        header, offset = _reader(body_cls.__header_schema__)(frame, 0)
        body, _ = _reader(body_cls)(frame, offset)
    except Exception as exc:  # kio raises several types (BufferUnderflow, KeyError on unknown tags, ValueError…)
        return Rejection(f"undecodable api_key {key} v{version}: {type(exc).__name__}: {exc}", correlation_id, None)
    if _illegal_null(body):
        return Rejection(f"api_key {key} v{version}: null in a non-nullable field", correlation_id, None)
    return Request(key, version, correlation_id, header, body)


def encode_response(correlation_id: int, body: Any) -> bytes:
    """Frame-ready bytes (size prefix included) of a response entity and its header."""
    header_cls = type(body).__header_schema__
    return _frame(header_cls(correlation_id=correlation_id), body)


def encode_request(header: Any, body: Any) -> bytes:
    """Frame-ready bytes of a request; used by tests and tools that speak to a broker directly."""
    return _frame(header, body)


def _frame(header: Any, body: Any) -> bytes:
    """The size prefix, then the header entity, then the body entity."""
    out = io.BytesIO()
    out.write(b"\x00\x00\x00\x00")
    _writer(type(header))(out, header)
    _writer(type(body))(out, body)
    data = out.getbuffer()
    struct.pack_into(">i", data, 0, len(data) - 4)
    return bytes(data)


def decode_response(payload: bytes, api_key: int, version: int) -> tuple[int, Any]:
    """(correlation_id, body) of a response frame body; used by tests and tools."""
    body_cls = load_response_schema(api_key, version)
    header, offset = _reader(body_cls.__header_schema__)(payload, 0)
    body, _ = _reader(body_cls)(payload, offset)
    return int(header.correlation_id), body


def api_versions_response(version: int, ranges: Ranges, error: ErrorCode = ErrorCode.none) -> Any:
    """The ApiVersions response of `version` advertising exactly `ranges`."""
    keys = [{"api_key": k, "min_version": lo, "max_version": hi} for k, (lo, hi) in sorted(ranges.items())]
    return build(load_response_schema(API_VERSIONS_KEY, version), {"error_code": error, "api_keys": keys})


_READERS: dict[Any, Callable[[bytes, int], tuple[Any, int]]] = {}
_WRITERS: dict[Any, Callable[[Any, Any], None]] = {}


def _reader(cls: Any) -> Callable[[bytes, int], tuple[Any, int]]:
    reader = _READERS.get(cls)
    if reader is None:
        reader = _READERS[cls] = entity_reader(cls)
    return reader


def _writer(cls: Any) -> Callable[[Any, Any], None]:
    writer = _WRITERS.get(cls)
    if writer is None:
        writer = _WRITERS[cls] = entity_writer(cls)
    return writer


# ---- building entities from version-agnostic dicts ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _FieldSpec:
    name: str
    kafka_type: str | None
    optional: bool
    nested: type | None
    is_tuple: bool
    has_default: bool


_SPECS: dict[Any, tuple[_FieldSpec, ...]] = {}


def _specs(cls: Any) -> tuple[_FieldSpec, ...]:
    found = _SPECS.get(cls)
    if found is None:
        found = _SPECS[cls] = _inspect(cls)
    return found


def _inspect(cls: Any) -> tuple[_FieldSpec, ...]:
    specs = []
    for f in dataclasses.fields(cls):
        tp: Any = f.type
        optional = False
        if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            optional = len(args) < len(typing.get_args(tp))
            tp = args[0]
        is_tuple = typing.get_origin(tp) is tuple
        inner = typing.get_args(tp)[0] if is_tuple else tp
        nested = inner if isinstance(inner, type) and dataclasses.is_dataclass(inner) else None
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        specs.append(_FieldSpec(f.name, f.metadata.get("kafka_type"), optional, nested, is_tuple, has_default))
    return tuple(specs)


def _zero(spec: _FieldSpec) -> Any:
    if spec.is_tuple:
        return ()
    if spec.optional:
        return None
    if spec.nested is not None:
        return build(spec.nested, {})
    return {
        "string": "",
        "bytes": b"",
        "records": b"",
        "bool": False,
        "uuid": _NULL_UUID,
        "error_code": ErrorCode.none,
        "timedelta_i32": datetime.timedelta(0),
        "timedelta_i64": datetime.timedelta(0),
        "float64": 0.0,
    }.get(spec.kafka_type or "", 0)


def _convert(spec: _FieldSpec, value: Any) -> Any:
    if value is None:
        return None if spec.optional else _zero(spec)
    if spec.nested is not None:
        if spec.is_tuple:
            return tuple(build(spec.nested, v) if isinstance(v, Mapping) else v for v in value)
        return build(spec.nested, value) if isinstance(value, Mapping) else value
    if spec.is_tuple:
        return tuple(value)
    kind = spec.kafka_type
    if kind == "error_code" and not isinstance(value, ErrorCode):
        return ErrorCode(value)
    if kind in ("timedelta_i32", "timedelta_i64") and isinstance(value, int):
        return datetime.timedelta(milliseconds=value)
    if kind == "datetime_i64" and isinstance(value, int):
        if value < 0:
            return None if spec.optional else datetime.datetime.fromtimestamp(0, datetime.UTC)
        return datetime.datetime.fromtimestamp(value / 1000, datetime.UTC)
    return value


def build(cls: type, data: Mapping[str, Any]) -> Any:
    """The `cls` entity from `data`: keys `cls` lacks are dropped; missing fields take their default or zero."""
    kwargs: dict[str, Any] = {}
    for spec in _specs(cls):
        if spec.name in data:
            kwargs[spec.name] = _convert(spec, data[spec.name])
        elif not spec.has_default:
            kwargs[spec.name] = _zero(spec)
    return cls(**kwargs)


def _illegal_null(entity: Any) -> bool:
    """Whether a decoded entity carries null where its schema forbids it (kio decodes such nulls as None)."""
    for spec in _specs(type(entity)):
        if spec.nested is None and not spec.is_tuple:
            continue
        value = getattr(entity, spec.name)
        if value is None:
            if not spec.optional:
                return True
        elif spec.nested is not None:
            children = value if spec.is_tuple else (value,)
            if any(_illegal_null(child) for child in children):
                return True
    return False
