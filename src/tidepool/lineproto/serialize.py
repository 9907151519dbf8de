"""Metrics → line protocol, byte for byte as Telegraf's influx serializer writes them.

Rules (Telegraf plugins/serializers/influx): tags sorted by key; a trailing backslash is trimmed from tag keys and
values and a tag with an empty key or value is left out; TAB/LF/FF/CR become `\\t \\n \\f \\r` in names and keys;
measurement escapes `,` and space, keys and tag values also `=`; string values escape only `\\` and `"`; floats are
the shortest decimal without exponent; NaN and ±Inf fields are skipped; unsigned fields are written `42u` only with
uint support, otherwise clipped to the int64 maximum and written `i`; a metric without fields is an error.
"""

from __future__ import annotations

import math
from decimal import Decimal

from tidepool.lineproto.types import Metric

_MAX_I64 = 2**63 - 1

_CONTROL = {"\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_NAME_TABLE = str.maketrans({**_CONTROL, ",": "\\,", " ": "\\ "})
_KEY_TABLE = str.maketrans({**_CONTROL, ",": "\\,", " ": "\\ ", "=": "\\="})
_STRING_TABLE = str.maketrans({"\\": "\\\\", '"': '\\"'})


class SerializeError(ValueError):
    """A metric that cannot be written (no name, or no serializable field)."""


def format_float(value: float) -> str:
    """Go's strconv.FormatFloat(v, 'f', -1, 64): shortest round-tripping decimal, never an exponent."""
    text = repr(value)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if text.endswith(".0"):
        text = text[:-2]
    return text


def _escape_key(text: str) -> str:
    return text.rstrip("\\").translate(_KEY_TABLE)


def _field_text(value: object, unsigned: bool, uint_support: bool) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if unsigned:
            if uint_support:
                return f"{value}u"
            return f"{min(value, _MAX_I64)}i"
        return f"{value}i"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return format_float(value)
    if isinstance(value, str):
        return '"' + value.translate(_STRING_TABLE) + '"'
    return None


def serialize_metric(
    metric: Metric,
    *,
    uint_support: bool = False,
    sort_fields: bool = False,
    omit_timestamp: bool = False,
    max_line_bytes: int = 0,
) -> bytes:
    """One metric as one or more `\\n`-terminated lines (several only when `max_line_bytes` forces a split)."""
    if not metric.name:
        raise SerializeError("invalid name")
    head = [metric.name.translate(_NAME_TABLE)]
    for key in sorted(metric.tags):
        tag_key = _escape_key(key)
        tag_value = _escape_key(metric.tags[key])
        if tag_key and tag_value:
            head.append(f"{tag_key}={tag_value}")
    header = ",".join(head)
    keys = sorted(metric.fields) if sort_fields else list(metric.fields)
    pairs: list[str] = []
    for key in keys:
        text = _field_text(metric.fields[key], key in metric.unsigned, uint_support)
        escaped_key = _escape_key(key)
        if text is None or not escaped_key:
            continue
        pairs.append(f"{escaped_key}={text}")
    if not pairs:
        raise SerializeError("no serializable fields")
    tail = "\n" if omit_timestamp else f" {metric.time}\n"
    if max_line_bytes <= 0:
        return f"{header} {','.join(pairs)}{tail}".encode()
    lines: list[str] = []
    current: list[str] = []
    budget = max_line_bytes - len(header.encode()) - 1 - len(tail.encode())
    used = 0
    for pair in pairs:
        size = len(pair.encode()) + (1 if current else 0)
        if current and used + size > budget:
            lines.append(f"{header} {','.join(current)}{tail}")
            current, used = [], 0
            size = len(pair.encode())
        current.append(pair)
        used += size
    if current:
        lines.append(f"{header} {','.join(current)}{tail}")
    return "".join(lines).encode()


def serialize_batch(metrics: list[Metric], **options: bool | int) -> bytes:
    """Many metrics into one body; metrics that cannot be serialized are skipped, as Telegraf does."""
    out: list[bytes] = []
    for metric in metrics:
        try:
            out.append(serialize_metric(metric, **options))  # type: ignore[arg-type]
        except SerializeError:
            continue
    return b"".join(out)
