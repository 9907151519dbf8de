"""Metrics → line protocol, byte for byte as Telegraf's influx serializer writes them (checked against Telegraf
v1.37.2's own code by tests/interop/test_agent_telegraf_serializer.py).

Rules (Telegraf plugins/serializers/influx): tags sorted by key; a trailing backslash is trimmed from tag keys and
values (not from field keys) and a tag with an empty key or value is left out; TAB/LF/FF/CR become
`\\t \\n \\f \\r` in names and keys; measurement escapes `,` and space, keys and tag values also `=`; string values
escape only `\\` and `"`; floats are the shortest decimal without exponent; NaN and ±Inf fields are skipped; unsigned
fields are written `42u` only with uint support, otherwise clipped to the int64 maximum and written `i`; a metric
without fields is an error; `max_line_bytes` splits fields over lines with Telegraf's own byte accounting.
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
_CACHE_LIMIT = 10_000


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


class InfluxSerializer:
    def __init__(
        self,
        *,
        max_line_bytes: int = 0,
        sort_fields: bool = False,
        uint_support: bool = False,
        omit_timestamp: bool = False,
    ) -> None:
        self.max_line_bytes = max_line_bytes
        self.sort_fields = sort_fields
        self.uint_support = uint_support
        self.omit_timestamp = omit_timestamp
        self._headers: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        self._keys: dict[str, str] = {}

    def _header(self, metric: Metric) -> str:
        cache_key = (metric.name, tuple(metric.tags.items()))
        header = self._headers.get(cache_key)
        if header is None:
            if not metric.name:
                raise SerializeError("invalid name")
            head = [metric.name.translate(_NAME_TABLE)]
            for key in sorted(metric.tags):
                tag_key, tag_value = _escape_key(key), _escape_key(metric.tags[key])
                if tag_key and tag_value:
                    head.append(f"{tag_key}={tag_value}")
            header = ",".join(head)
            if len(self._headers) >= _CACHE_LIMIT:
                self._headers.clear()
            self._headers[cache_key] = header
        return header

    def _field_key(self, key: str) -> str:
        escaped = self._keys.get(key)
        if escaped is None:
            # Unlike tag keys, Telegraf does not trim a trailing backslash from field keys.
            escaped = key.translate(_KEY_TABLE)
            if len(self._keys) >= _CACHE_LIMIT:
                self._keys.clear()
            self._keys[key] = escaped
        return escaped

    def _pairs(self, metric: Metric) -> list[str]:
        """`key=value` of every serializable field, in metric (or sorted) order; others are skipped."""
        fields = metric.fields
        pairs: list[str] = []
        for key in sorted(fields) if self.sort_fields else fields:
            value = fields[key]
            kind = type(value)
            if kind is float:
                if math.isfinite(value):  # type: ignore[arg-type]
                    text = repr(value)
                    if "e" in text:
                        text = format_float(value)  # type: ignore[arg-type]
                    elif text.endswith(".0"):
                        text = text[:-2]
                else:
                    continue
            elif kind is bool:
                text = "true" if value else "false"
            elif kind is int:
                if key in metric.unsigned:
                    text = f"{value}u" if self.uint_support else f"{min(value, _MAX_I64)}i"
                else:
                    text = f"{value}i"
            elif kind is str:
                text = '"' + value.translate(_STRING_TABLE) + '"'  # type: ignore[union-attr]
            else:
                continue
            escaped = self._field_key(key)
            if escaped:
                pairs.append(f"{escaped}={text}")
        return pairs

    def _footer(self, metric: Metric) -> str:
        return "\n" if self.omit_timestamp else f" {metric.time}\n"

    def _line(self, metric: Metric) -> str:
        header = self._header(metric)
        pairs = self._pairs(metric)
        if not pairs:
            raise SerializeError("no serializable fields")
        return f"{header} {','.join(pairs)}{self._footer(metric)}"

    def _write_split(self, metric: Metric, out: list[str]) -> None:
        """Telegraf's influx_max_line_bytes: fields spill onto further lines with the same header.

        Byte accounting is Telegraf's own (commas before earlier fields of a line are not counted), and a field
        that cannot fit even alone fails the metric with "need more space", keeping the lines already written.
        """
        limit = self.max_line_bytes
        header = self._header(metric) + " "
        footer = self._footer(metric)
        header_len, footer_len = len(header.encode()), len(footer.encode())
        pairs_len, first = 0, True
        for pair in self._pairs(metric):
            pair_len = len(pair.encode())
            needed = header_len + pairs_len + pair_len + footer_len + (0 if first else 1)
            if needed > limit:
                if first:
                    raise SerializeError("need more space")
                out.append(footer)
                pairs_len, first = 0, True
                if header_len + pair_len + footer_len > limit:
                    raise SerializeError("need more space")
            out.append(header if first else ",")
            out.append(pair)
            pairs_len += pair_len
            first = False
        if first:
            raise SerializeError("no serializable fields")
        out.append(footer)

    def serialize(self, metric: Metric) -> bytes:
        if self.max_line_bytes > 0:
            out: list[str] = []
            self._write_split(metric, out)
            return "".join(out).encode()
        return self._line(metric).encode()

    def serialize_batch(self, metrics: list[Metric]) -> bytes:
        lines: list[str] = []
        for metric in metrics:
            try:
                if self.max_line_bytes > 0:
                    self._write_split(metric, lines)
                else:
                    lines.append(self._line(metric))
            except SerializeError:
                continue
        return "".join(lines).encode()


def serialize_metric(
    metric: Metric,
    *,
    uint_support: bool = False,
    sort_fields: bool = False,
    omit_timestamp: bool = False,
    max_line_bytes: int = 0,
) -> bytes:
    """One metric as one or more `\\n`-terminated lines (several only when `max_line_bytes` forces a split)."""
    return InfluxSerializer(
        uint_support=uint_support, sort_fields=sort_fields, omit_timestamp=omit_timestamp, max_line_bytes=max_line_bytes
    ).serialize(metric)


def serialize_batch(metrics: list[Metric], **options: bool | int) -> bytes:
    """Many metrics into one body; metrics that cannot be serialized are skipped, as Telegraf does."""
    return InfluxSerializer(**options).serialize_batch(metrics)  # type: ignore[arg-type]
