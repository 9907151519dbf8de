"""parsers.value — one value per payload (`data_format = "value"`).

Options: `data_type` = integer | float | long | string | boolean | auto_integer | auto_float (default float),
`value_field_name` (default "value"). As Telegraf: NUL bytes and surrounding whitespace are trimmed; unless the
type is string, only the last whitespace-separated word counts; an empty payload gives no metric.
"""

from __future__ import annotations

import time

from tidepool.agent.options import ConfigError, PluginOptions
from tidepool.agent.plugins import ParseError
from tidepool.agent.plugins.parsers import PARSERS
from tidepool.lineproto import Metric

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
DATA_TYPES = ("integer", "float", "long", "string", "boolean", "auto_integer", "auto_float")


def _convert(data_type: str, text: str) -> int | float | str | bool:
    if data_type in ("integer", "long"):
        return int(text)
    if data_type == "float":
        return float(text)
    if data_type == "boolean":
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f'invalid syntax: "{text}"')
    if data_type == "auto_integer":
        for convert in (int, float):
            try:
                return convert(text)
            except ValueError:
                continue
        return text
    if data_type == "auto_float":
        try:
            return float(text)
        except ValueError:
            return text
    return text


class ValueParser:
    def __init__(self, metric_name: str, data_type: str, field_name: str) -> None:
        self.metric_name = metric_name
        self.data_type = data_type
        self.field_name = field_name

    def parse(self, data: bytes) -> list[Metric]:
        text = data.strip(b"\x00").decode("utf-8", "replace").strip()
        if self.data_type != "string":
            words = text.split()
            if not words:
                return []
            text = words[-1]
        try:
            value = _convert(self.data_type, text)
        except ValueError as exc:
            raise ParseError(f"parsing {text!r} as {self.data_type}: {exc}") from None
        return [Metric(self.metric_name, {}, {self.field_name: value}, time.time_ns())]


@PARSERS.add("value")
def make_value_parser(opts: PluginOptions, metric_name: str) -> ValueParser:
    data_type = opts.string("data_type", "float").lower()
    if data_type not in DATA_TYPES:
        expected = ", ".join(DATA_TYPES)
        raise ConfigError(f"plugin {opts.plugin}: unknown data_type {data_type!r}; expected one of {expected}")
    return ValueParser(metric_name, data_type, opts.string("value_field_name", "value"))
