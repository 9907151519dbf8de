"""Line protocol → columns. A body is parsed whole: any bad line rejects it, with every bad line reported.

Two paths give the same result. The fast path handles the common body (every line the same shape: one
measurement, the same tag keys and field keys in the same order, no quotes, escapes or comments) with Arrow's
vectorized CSV reader and string kernels. Anything else, or any doubt, goes to the general path: a per-line
scanner that implements every rule and knows line and column for its errors.
"""

from __future__ import annotations

import re
import time as _time
from collections.abc import Iterable

import pyarrow as pa

from tidepool.lineproto.types import (
    FieldType,
    FieldValue,
    LineError,
    LineProtocolError,
    MeasurementBatch,
    ParsedBatch,
)

PRECISION_FACTORS = {"ns": 1, "n": 1, "us": 1_000, "u": 1_000, "ms": 1_000_000, "s": 1_000_000_000}

_BOOLEANS = {
    "t": True, "T": True, "true": True, "True": True, "TRUE": True,
    "f": False, "F": False, "false": False, "False": False, "FALSE": False,
}  # fmt: skip
_FLOAT_RE = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\Z")
_INT_RE = re.compile(r"-?\d+\Z")
_UINT_RE = re.compile(r"\d+\Z")
_MAX_I64 = 2**63 - 1
_MIN_I64 = -(2**63)
_MAX_U64 = 2**64 - 1

# One parsed line: measurement, tags, fields (key → (type, value)), timestamp in ns or None.
_Point = tuple[str, dict[str, str], dict[str, tuple[FieldType, FieldValue]], int | None]


def precision_factor(precision: str) -> int:
    """Nanoseconds per unit of `precision` (ns, us, ms, s; n and u accepted as InfluxDB does)."""
    try:
        return PRECISION_FACTORS[precision.lower()]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; expected one of ns, us, ms, s") from None


def parse(body: bytes | str, precision: str = "ns", now_ns: int | None = None) -> ParsedBatch:
    """Parse a whole body. Lines without a timestamp get `now_ns` (default: the current time).

    Raises LineProtocolError listing every bad line; nothing of a bad body is returned.
    """
    factor = precision_factor(precision)
    if now_ns is None:
        now_ns = _time.time_ns()
    raw = body.encode() if isinstance(body, str) else bytes(body)
    from tidepool.lineproto import _fast

    fast = _fast.parse_uniform(raw, factor, now_ns)
    if fast is not None:
        return fast
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise LineProtocolError([LineError(line, column, "invalid UTF-8", "")]) from None
    return _columns(parse_points(text, factor, now_ns))


def parse_points(text: str, factor: int = 1, now_ns: int | None = None) -> list[_Point]:
    """The general path: every line of `text` as (measurement, tags, fields, time_ns)."""
    points: list[_Point] = []
    errors: list[LineError] = []
    default_time = _time.time_ns() if now_ns is None else now_ns
    field_types: dict[tuple[str, str], FieldType] = {}
    for lineno, line, point_or_error in _scan(text):
        if isinstance(point_or_error, LineError):
            errors.append(point_or_error)
            continue
        name, tags, fields, ts = point_or_error
        for key, (ftype, _value) in fields.items():
            known = field_types.setdefault((name, key), ftype)
            if known is not ftype:
                errors.append(
                    LineError(
                        lineno,
                        max(1, line.find(f"{key}=") + 1),
                        f"field {key!r} is {ftype.cnosdb_name} here but {known.cnosdb_name} in an earlier line",
                        line,
                    )
                )
        if ts is not None:
            ts *= factor
            if not _MIN_I64 <= ts <= _MAX_I64:
                errors.append(
                    LineError(
                        lineno,
                        max(1, len(line.rstrip()) - len(str(ts // factor)) + 1),
                        "timestamp overflow",
                        line,
                    )
                )
                continue
        points.append((name, tags, fields, default_time if ts is None else ts))
    if errors:
        raise LineProtocolError(errors)
    return points


class _Bad(Exception):
    def __init__(self, column: int, message: str) -> None:
        self.column = column
        self.message = message


def _scan(text: str) -> Iterable[tuple[int, str, _Point | LineError]]:
    """Yield (line number, line text, point or error) for each non-blank, non-comment line."""
    pos = 0
    lineno = 1
    end = len(text)
    while pos < end:
        nl = text.find("\n", pos)
        if nl < 0:
            nl = end
        line = text[pos:nl]
        stripped = line.strip(" \t\r")
        if not stripped or stripped.startswith("#"):
            pos = nl + 1
            lineno += 1
            continue
        if "\\" not in line and '"' not in line:
            try:
                yield lineno, line, _parse_simple(line.rstrip("\r"))
            except _Bad as bad:
                yield lineno, line, LineError(lineno, bad.column, bad.message, line)
            pos = nl + 1
            lineno += 1
            continue
        try:
            point, consumed = _parse_escaped(text, pos)
        except _Bad as bad:
            yield lineno, line, LineError(lineno, bad.column, bad.message, line)
            pos = nl + 1
            lineno += 1
            continue
        yield lineno, line, point
        lineno += text.count("\n", pos, consumed) + (1 if consumed < end else 0)
        pos = consumed + 1


def _parse_simple(line: str) -> _Point:
    """A line with no backslash and no double quote: plain splits are exact."""
    indent = len(line) - len(line.lstrip(" \t"))
    body = line[indent:].rstrip(" \t")
    parts = body.split(" ")
    parts = [p for p in parts if p]
    if len(parts) < 2:
        raise _Bad(len(line) + 1, "expected a field set after the measurement and tags")
    if len(parts) > 3:
        col = line.find(parts[3]) + 1
        raise _Bad(col, "unexpected text after the timestamp")
    head = parts[0]
    key_parts = head.split(",")
    name = key_parts[0]
    if not name:
        raise _Bad(indent + 1, "expected a measurement name")
    tags: dict[str, str] = {}
    col = indent + len(name) + 2
    for kv in key_parts[1:]:
        key, eq, value = kv.partition("=")
        if not key:
            raise _Bad(col, "expected a tag key")
        if not eq:
            raise _Bad(col + len(kv), f"expected '=' after tag key {key!r}")
        if not value:
            raise _Bad(col + len(kv), f"expected a value for tag {key!r}")
        if "=" in value:
            raise _Bad(col + len(key) + 1 + value.index("="), "unescaped '=' in tag value")
        tags[key] = value
        col += len(kv) + 1
    fields_text = parts[1]
    col = line.find(fields_text, indent + len(head)) + 1
    fields: dict[str, tuple[FieldType, FieldValue]] = {}
    for kv in fields_text.split(","):
        key, eq, value = kv.partition("=")
        if not key:
            raise _Bad(col, "expected a field key")
        if not eq:
            raise _Bad(col + len(kv), f"expected '=' after field key {key!r}")
        fields[key] = _field_value(value, col + len(key) + 1)
        col += len(kv) + 1
    ts: int | None = None
    if len(parts) == 3:
        ts = _timestamp(parts[2], line.rfind(parts[2]) + 1)
    return name, tags, fields, ts


def _field_value(value: str, column: int) -> tuple[FieldType, FieldValue]:
    if not value:
        raise _Bad(column, "expected a field value")
    last = value[-1]
    if last == "i":
        digits = value[:-1]
        if _INT_RE.match(digits):
            number = int(digits)
            if _MIN_I64 <= number <= _MAX_I64:
                return FieldType.INTEGER, number
            raise _Bad(column, f"integer {value} out of range for a signed 64-bit integer")
        raise _Bad(column, f"invalid integer {value!r}")
    if last == "u":
        digits = value[:-1]
        if _UINT_RE.match(digits):
            number = int(digits)
            if number <= _MAX_U64:
                return FieldType.UNSIGNED, number
            raise _Bad(column, f"unsigned {value} out of range for an unsigned 64-bit integer")
        raise _Bad(column, f"invalid unsigned integer {value!r}")
    boolean = _BOOLEANS.get(value)
    if boolean is not None:
        return FieldType.BOOLEAN, boolean
    if _FLOAT_RE.match(value):
        number_f = float(value)
        if number_f in (float("inf"), float("-inf")):
            raise _Bad(column, f"float {value} out of range")
        return FieldType.FLOAT, number_f
    raise _Bad(column, f'invalid field value {value!r}: expected a number, 1i, 1u, a boolean or a "string"')


def _timestamp(text: str, column: int) -> int:
    if not _INT_RE.match(text):
        raise _Bad(column, f"invalid timestamp {text!r}: expected an integer")
    number = int(text)
    if not _MIN_I64 <= number <= _MAX_I64:
        raise _Bad(column, f"timestamp {text} out of range")
    return number


_MEASUREMENT_ESCAPES = frozenset(", ")
_KEY_ESCAPES = frozenset(", =")


def _read_name(text: str, i: int, line_start: int, stops: str, escapes: frozenset[str]) -> tuple[str, int]:
    """Read up to the first unescaped char in `stops` (or newline/end); a backslash escapes only `escapes`."""
    out: list[str] = []
    end = len(text)
    while i < end:
        ch = text[i]
        if ch == "\\" and i + 1 < end and text[i + 1] in escapes:
            out.append(text[i + 1])
            i += 2
            continue
        if ch in stops or ch == "\n":
            break
        out.append(ch)
        i += 1
    return "".join(out), i


def _parse_escaped(text: str, pos: int) -> tuple[_Point, int]:
    """The full scanner for lines with escapes or quoted strings; returns the point and the offset of its end."""
    end = len(text)

    def col(i: int) -> int:
        return i - pos + 1

    i = pos
    while i < end and text[i] in " \t":
        i += 1
    name, i = _read_name(text, i, pos, ", ", _MEASUREMENT_ESCAPES)
    if not name:
        raise _Bad(col(i), "expected a measurement name")
    tags: dict[str, str] = {}
    while i < end and text[i] == ",":
        key, j = _read_name(text, i + 1, pos, ",= ", _KEY_ESCAPES)
        if not key:
            raise _Bad(col(i + 1), "expected a tag key")
        if j >= end or text[j] != "=":
            raise _Bad(col(j), f"expected '=' after tag key {key!r}")
        value, k = _read_name(text, j + 1, pos, ",= ", _KEY_ESCAPES)
        if not value:
            raise _Bad(col(j + 1), f"expected a value for tag {key!r}")
        if k < end and text[k] == "=":
            raise _Bad(col(k), "unescaped '=' in tag value")
        tags[key] = value
        i = k
    if i >= end or text[i] != " ":
        raise _Bad(col(i), "expected a field set after the measurement and tags")
    while i < end and text[i] == " ":
        i += 1
    fields: dict[str, tuple[FieldType, FieldValue]] = {}
    while True:
        key, j = _read_name(text, i, pos, ",= ", _KEY_ESCAPES)
        if not key:
            raise _Bad(col(i), "expected a field key")
        if j >= end or text[j] != "=":
            raise _Bad(col(j), f"expected '=' after field key {key!r}")
        j += 1
        if j < end and text[j] == '"':
            chars: list[str] = []
            k = j + 1
            while True:
                if k >= end:
                    raise _Bad(col(j), f"unterminated string value for field {key!r}")
                ch = text[k]
                if ch == "\\" and k + 1 < end and text[k + 1] in '"\\':
                    chars.append(text[k + 1])
                    k += 2
                    continue
                if ch == '"':
                    break
                chars.append(ch)
                k += 1
            fields[key] = (FieldType.STRING, "".join(chars))
            k += 1
        else:
            k = j
            while k < end and text[k] not in ", \n":
                k += 1
            value = text[j:k].rstrip("\r")
            fields[key] = _field_value(value, col(j))
        if k < end and text[k] == ",":
            i = k + 1
            continue
        i = k
        break
    ts: int | None = None
    while i < end and text[i] in " \t":
        i += 1
    if i < end and text[i] not in "\r\n":
        k = i
        while k < end and text[k] not in " \t\r\n":
            k += 1
        ts = _timestamp(text[i:k], col(i))
        i = k
        while i < end and text[i] in " \t\r":
            i += 1
        if i < end and text[i] != "\n":
            raise _Bad(col(i), "unexpected text after the timestamp")
    elif i < end and text[i] == "\r":
        i += 1
    if i < end and text[i] != "\n":
        raise _Bad(col(i), "unexpected text after the fields")
    return (name, tags, fields, ts), i


def _columns(points: list[_Point]) -> ParsedBatch:
    """Rows → one MeasurementBatch per measurement (field types already checked to agree)."""
    by_name: dict[str, list[_Point]] = {}
    for point in points:
        by_name.setdefault(point[0], []).append(point)
    measurements: dict[str, MeasurementBatch] = {}
    for name, rows in by_name.items():
        times = [row[3] for row in rows]
        tag_cols: dict[str, list[str | None]] = {}
        field_cols: dict[str, list[FieldValue | None]] = {}
        field_types: dict[str, FieldType] = {}
        for n, (_, tags, fields, _ts) in enumerate(rows):
            for key, value in tags.items():
                col = tag_cols.get(key)
                if col is None:
                    col = tag_cols[key] = [None] * len(rows)
                col[n] = value
            for key, (ftype, fvalue) in fields.items():
                field_types.setdefault(key, ftype)
                fcol = field_cols.get(key)
                if fcol is None:
                    fcol = field_cols[key] = [None] * len(rows)
                fcol[n] = fvalue
        measurements[name] = MeasurementBatch(
            name=name,
            time=pa.array(times, pa.int64()),
            tags={k: pa.array(v, pa.string()) for k, v in tag_cols.items()},
            fields={k: (field_types[k], pa.array(v, field_types[k].arrow_type)) for k, v in field_cols.items()},
        )
    return ParsedBatch(measurements, len(points))
