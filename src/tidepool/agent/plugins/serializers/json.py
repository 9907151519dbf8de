"""serializers.json — Telegraf's JSON serializer (`data_format = "json"`), byte for byte.

One metric: `{"fields":{…},"name":"…","tags":{…},"timestamp":N}` (keys sorted, as Go's encoding/json writes a
map); a batch: `{"metrics":[…]}`; each followed by a newline. Options:
  json_timestamp_units   unit of `timestamp` (default 1s), rounded down to a power of ten as Telegraf does; the
                         value is the nanoseconds divided by it, truncated toward zero
  json_timestamp_format  a Go time layout; the timestamp is then that text, in UTC
  json_nested_fields_include / json_nested_fields_exclude, json_transformation: not supported (refused)
Go's encoding rules are kept: floats shortest, exponent form below 1e-6 and from 1e21 (`1e-7`, `1e+21`); `<`, `>`,
`&`, U+2028 and U+2029 escaped as \u003c …; NaN and ±Inf fields skipped. Checked against Telegraf's own serializer
by tests/interop/test_agent_telegraf_serializer.py.
"""

from __future__ import annotations

import math

import orjson

from tidepool.agent.options import ConfigError, PluginOptions
from tidepool.agent.plugins.serializers import SERIALIZERS
from tidepool.agent.timeparse import format_layout
from tidepool.lineproto import Metric, format_float

_HTML_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def go_json_float(value: float) -> str:
    """encoding/json's float64: 'f' for 1e-6 <= |v| < 1e21, else 'e' (two-digit exponent, but `e-7` not `e-07`)."""
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        mantissa, _, exponent_text = repr(value).partition("e")
        if mantissa.endswith(".0"):
            mantissa = mantissa[:-2]
        exponent = int(exponent_text)
        if -10 < exponent < 0:
            return f"{mantissa}e-{-exponent}"
        return f"{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    return format_float(value)


def go_json_string(text: str) -> str:
    """encoding/json's string: orjson's escaping plus Go's HTML-safe escapes."""
    return orjson.dumps(text).decode().translate(_HTML_SAFE)


def _power_of_ten_below(units_ns: int) -> int:
    unit = 1
    while unit * 10 <= units_ns:
        unit *= 10
    return unit


class JSONSerializer:
    def __init__(self, timestamp_units_ns: int = 10**9, timestamp_format: str = "") -> None:
        self.units = _power_of_ten_below(timestamp_units_ns) if timestamp_units_ns > 0 else 10**9
        self.timestamp_format = timestamp_format

    def _timestamp(self, time_ns: int) -> str:
        if self.timestamp_format:
            return go_json_string(format_layout(self.timestamp_format, time_ns))
        quotient = abs(time_ns) // self.units
        return str(-quotient if time_ns < 0 else quotient)

    def _object(self, metric: Metric) -> str:
        fields: list[str] = []
        for key in sorted(metric.fields):
            value = metric.fields[key]
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, int):
                text = str(value)
            elif isinstance(value, float):
                if not math.isfinite(value):
                    continue
                text = go_json_float(value)
            else:
                text = go_json_string(value)
            fields.append(f"{go_json_string(key)}:{text}")
        tags = ",".join(f"{go_json_string(k)}:{go_json_string(metric.tags[k])}" for k in sorted(metric.tags))
        return (
            f'{{"fields":{{{",".join(fields)}}},"name":{go_json_string(metric.name)},'
            f'"tags":{{{tags}}},"timestamp":{self._timestamp(metric.time)}}}'
        )

    def serialize(self, metric: Metric) -> bytes:
        return (self._object(metric) + "\n").encode()

    def serialize_batch(self, metrics: list[Metric]) -> bytes:
        return ('{"metrics":[' + ",".join(self._object(m) for m in metrics) + "]}\n").encode()


@SERIALIZERS.add("json")
def make_json_serializer(opts: PluginOptions) -> JSONSerializer:
    units = opts.duration("json_timestamp_units", 1.0)
    for absent in ("json_transformation", "json_nested_fields_include", "json_nested_fields_exclude"):
        if absent in opts and opts.raw(absent):
            raise ConfigError(f"plugin {opts.plugin}: {absent} is not supported by tidepool")
    return JSONSerializer(round(units * 1e9), opts.string("json_timestamp_format"))
