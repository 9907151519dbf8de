"""serializers.influx — InfluxDB line protocol, byte for byte as Telegraf's influx serializer writes it.

Options (read from the output's table):
  influx_max_line_bytes  split a metric's fields over several lines of at most this many bytes (0: never)
  influx_sort_fields     write fields sorted by key (default false: in the metric's order)
  influx_uint_support    write unsigned fields as `42u` (default false: clipped to the int64 maximum, `i`)
  influx_omit_timestamp  leave the timestamp out (default false)
The rules themselves live in tidepool.lineproto.serialize; this plugin adds a per-series header cache so the
common path (same measurement and tags, float fields) costs little per metric, and falls back to lineproto for
anything unusual. A metric that cannot be written (no name, no serializable field) is skipped in a batch.
"""

from __future__ import annotations

import math

from tidepool.agent.options import PluginOptions
from tidepool.agent.plugins.serializers import SERIALIZERS
from tidepool.lineproto import Metric, SerializeError, format_float, serialize_metric

_MAX_I64 = 2**63 - 1
_CONTROL = {"\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_NAME_TABLE = str.maketrans({**_CONTROL, ",": "\\,", " ": "\\ "})
_KEY_TABLE = str.maketrans({**_CONTROL, ",": "\\,", " ": "\\ ", "=": "\\="})
_STRING_TABLE = str.maketrans({"\\": "\\\\", '"': '\\"'})
_CACHE_LIMIT = 10_000


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
            escaped = _escape_key(key)
            if len(self._keys) >= _CACHE_LIMIT:
                self._keys.clear()
            self._keys[key] = escaped
        return escaped

    def serialize(self, metric: Metric) -> bytes:
        if self.max_line_bytes > 0:
            return serialize_metric(
                metric,
                uint_support=self.uint_support,
                sort_fields=self.sort_fields,
                omit_timestamp=self.omit_timestamp,
                max_line_bytes=self.max_line_bytes,
            )
        return self._line(metric).encode()

    def _line(self, metric: Metric) -> str:
        header = self._header(metric)
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
        if not pairs:
            raise SerializeError("no serializable fields")
        if self.omit_timestamp:
            return f"{header} {','.join(pairs)}\n"
        return f"{header} {','.join(pairs)} {metric.time}\n"

    def serialize_batch(self, metrics: list[Metric]) -> bytes:
        if self.max_line_bytes > 0:
            return b"".join(self._serialize_or_skip(m) for m in metrics)
        lines: list[str] = []
        for metric in metrics:
            try:
                lines.append(self._line(metric))
            except SerializeError:
                continue
        return "".join(lines).encode()

    def _serialize_or_skip(self, metric: Metric) -> bytes:
        try:
            return self.serialize(metric)
        except SerializeError:
            return b""


@SERIALIZERS.add("influx")
def make_influx_serializer(opts: PluginOptions) -> InfluxSerializer:
    return InfluxSerializer(
        max_line_bytes=opts.integer("influx_max_line_bytes", 0),
        sort_fields=opts.boolean("influx_sort_fields", False),
        uint_support=opts.boolean("influx_uint_support", False),
        omit_timestamp=opts.boolean("influx_omit_timestamp", False),
    )
