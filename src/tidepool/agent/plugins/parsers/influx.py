"""parsers.influx — InfluxDB line protocol (`data_format = "influx"`), via tidepool.lineproto.

Options: `influx_timestamp_precision` (ns default; us, ms, s) for lines that carry a timestamp;
`influx_parser_type` is accepted ("internal"/"upstream" behave the same here). Lines without a timestamp get the
time of parsing. A payload with any bad line is refused whole.
"""

from __future__ import annotations

import time

from tidepool.agent.options import ConfigError, PluginOptions
from tidepool.agent.plugins import ParseError
from tidepool.agent.plugins.parsers import PARSERS
from tidepool.lineproto import FieldType, LineProtocolError, Metric, parse_points, precision_factor

_TYPE_CONFLICT = "in an earlier line"


def logical_lines(text: str) -> list[str]:
    """The lines of a body, where a newline inside a quoted string field value does not end the line."""
    lines: list[str] = []
    start, i, n = 0, 0, len(text)
    section = "key"  # key (measurement and tags) → fields → (string inside fields) → time
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if section == "string":
            if ch == '"':
                section = "fields"
        elif ch == "\n":
            lines.append(text[start:i])
            start, section = i + 1, "key"
        elif section == "key" and ch == " ":
            section = "fields"
        elif section == "fields" and ch == '"':
            section = "string"
        elif section == "fields" and ch == " ":
            section = "time"
        i += 1
    lines.append(text[start:])
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


class InfluxParser:
    def __init__(self, precision: str = "ns") -> None:
        self.factor = precision_factor(precision)

    def parse(self, data: bytes) -> list[Metric]:
        try:
            text = data.decode()
        except UnicodeDecodeError as exc:
            raise ParseError(f"invalid UTF-8: {exc}") from None
        now = time.time_ns()
        try:
            points = parse_points(text, self.factor, now)
        except LineProtocolError as exc:
            if not all(_TYPE_CONFLICT in error.message for error in exc.errors):
                raise ParseError(str(exc)) from None
            # lineproto refuses a body whose lines give one field different types (CnosDB's rule for writes);
            # Telegraf's parser takes each line on its own, so parse them one by one.
            points = []
            for line in logical_lines(text):
                try:
                    points.extend(parse_points(line, self.factor, now))
                except LineProtocolError as line_exc:
                    raise ParseError(str(line_exc)) from None
        metrics = []
        for name, tags, typed_fields, ts in points:
            fields = {key: value for key, (_kind, value) in typed_fields.items()}
            unsigned = frozenset(k for k, (kind, _v) in typed_fields.items() if kind is FieldType.UNSIGNED)
            metrics.append(Metric(name, tags, fields, ts or 0, unsigned))
        return metrics


@PARSERS.add("influx")
def make_influx_parser(opts: PluginOptions, metric_name: str) -> InfluxParser:
    precision = opts.duration("influx_timestamp_precision", 0.0)
    opts.accept("influx_parser_type")
    units = {0.0: "ns", 1e-9: "ns", 1e-6: "us", 1e-3: "ms", 1.0: "s"}
    if precision not in units:
        raise ConfigError(f"plugin {opts.plugin}: invalid influx_timestamp_precision (use 1ns, 1us, 1ms or 1s)")
    return InfluxParser(units[precision])
