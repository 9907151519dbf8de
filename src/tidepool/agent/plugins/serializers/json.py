"""serializers.json — Telegraf's JSON serializer (`data_format = "json"`).

One metric: `{"fields":{…},"name":"…","tags":{…},"timestamp":N}` (keys sorted, as Go's encoding/json writes a
map); a batch: `{"metrics":[…]}`; each followed by a newline. Options:
  json_timestamp_units   unit of `timestamp` as a duration (default 1s; 1ms, 1us, 1ns …); the value is truncated
  json_timestamp_format  a Go-style layout name: only "rfc3339"/"rfc3339nano" are supported; else an integer
  json_nested_fields_include / json_nested_fields_exclude, json_transformation: not supported (rejected)
Floats are written as Go does (shortest; exponent form below 1e-6 and from 1e21); NaN and ±Inf fields are skipped.
"""

from __future__ import annotations

import datetime as dt
import math

import orjson

from tidepool.agent.options import ConfigError, PluginOptions
from tidepool.agent.plugins.serializers import SERIALIZERS
from tidepool.lineproto import Metric


def go_json_float(value: float) -> str:
    """encoding/json's float64: 'f' format for 1e-6 <= |v| < 1e21, else 'e' with a two-digit minimum exponent."""
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        mantissa, _, exponent = repr(value).partition("e")
        if not exponent:
            mantissa, _, exponent = format(value, ".17g").partition("e")
        if mantissa.endswith(".0"):
            mantissa = mantissa[:-2]
        sign = "-" if exponent.startswith("-") else "+"
        digits = exponent.lstrip("+-").lstrip("0").rjust(2, "0")
        return f"{mantissa}e{sign}{digits}"
    text = repr(value)
    if "e" in text:
        from tidepool.lineproto import format_float

        return format_float(value)
    return text[:-2] if text.endswith(".0") else text


def _json_string(text: str) -> str:
    return orjson.dumps(text).decode()


class JSONSerializer:
    def __init__(self, timestamp_units_ns: int = 10**9, timestamp_format: str = "") -> None:
        self.units = max(1, timestamp_units_ns)
        self.timestamp_format = timestamp_format.lower()

    def _timestamp(self, time_ns: int) -> str:
        if self.timestamp_format in ("rfc3339", "rfc3339nano"):
            moment = dt.datetime.fromtimestamp(time_ns // 10**9, dt.UTC)
            nanos = time_ns % 10**9
            text = moment.strftime("%Y-%m-%dT%H:%M:%S")
            if self.timestamp_format == "rfc3339nano" and nanos:
                text += "." + f"{nanos:09d}".rstrip("0")
            return _json_string(text + "Z")
        return str(time_ns // self.units)

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
                text = _json_string(value)
            fields.append(f"{_json_string(key)}:{text}")
        tags = ",".join(f"{_json_string(k)}:{_json_string(metric.tags[k])}" for k in sorted(metric.tags))
        return (
            f'{{"fields":{{{",".join(fields)}}},"name":{_json_string(metric.name)},'
            f'"tags":{{{tags}}},"timestamp":{self._timestamp(metric.time)}}}'
        )

    def serialize(self, metric: Metric) -> bytes:
        return (self._object(metric) + "\n").encode()

    def serialize_batch(self, metrics: list[Metric]) -> bytes:
        return ('{"metrics":[' + ",".join(self._object(m) for m in metrics) + "]}\n").encode()


@SERIALIZERS.add("json")
def make_json_serializer(opts: PluginOptions) -> JSONSerializer:
    units = opts.duration("json_timestamp_units", 1.0)
    fmt = opts.string("json_timestamp_format")
    if fmt and fmt.lower() not in ("rfc3339", "rfc3339nano", "unix"):
        raise ConfigError(f"plugin {opts.plugin}: json_timestamp_format {fmt!r} is not supported by tidepool")
    for absent in ("json_transformation", "json_nested_fields_include", "json_nested_fields_exclude"):
        if absent in opts and opts.raw(absent):
            raise ConfigError(f"plugin {opts.plugin}: {absent} is not supported by tidepool")
    return JSONSerializer(round(units * 1e9) if units > 0 else 10**9, "" if fmt.lower() == "unix" else fmt)
