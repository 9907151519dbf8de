"""parsers.value — one value per payload (`data_format = "value"`), as Telegraf v1.37's value parser.

Options: `data_type` = int/integer (the default), float/long (both float), str/string, bool/boolean, base64 (the
raw payload, base64-encoded), auto_integer (an integer, else the text), auto_float (a float, else the text);
`value_field_name` (default "value"). NUL bytes and surrounding whitespace are trimmed; unless the type is
string, only the last whitespace-separated word counts and an empty payload gives no metric. Numbers follow Go's
strconv (integers: no underscores, 64-bit range; floats: underscores between digits, `inf`, `nan`, hex floats).
Checked against Telegraf's own parser by tests/interop/test_agent_telegraf_json_parser.py.
"""

from __future__ import annotations

import base64
import math
import re
import time

from tidepool.agent.options import ConfigError, PluginOptions
from tidepool.agent.plugins import ParseError
from tidepool.agent.plugins.parsers import PARSERS
from tidepool.lineproto import Metric

_BOOLEANS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}  # fmt: skip
_TYPES = {"": "int", "int": "int", "integer": "int", "float": "float", "long": "float", "str": "string",
          "string": "string", "base64": "base64", "bool": "bool", "boolean": "bool", "auto_integer": "auto_integer",
          "auto_float": "auto_float"}  # fmt: skip
_INT = re.compile(r"[+-]?\d+")
_DIGITS = r"\d(?:_?\d)*"  # Go's float syntax allows an underscore between digits
_DECIMAL_FLOAT = re.compile(rf"[+-]?(?:{_DIGITS}\.?(?:{_DIGITS})?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?")
_SPECIAL_FLOAT = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)
_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+")


def go_atoi(text: str) -> int:
    """strconv.Atoi on a 64-bit platform."""
    if not _INT.fullmatch(text):
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f'strconv.Atoi: parsing "{text}": value out of range')
    return value


def go_parse_float(text: str) -> float:
    """strconv.ParseFloat(text, 64): decimal, inf/infinity/nan and hex-float syntax; overflow is an error."""
    if _SPECIAL_FLOAT.fullmatch(text):
        return float(text)
    if _HEX_FLOAT.fullmatch(text):
        value = float.fromhex(text)
    elif _DECIMAL_FLOAT.fullmatch(text):
        value = float(text.replace("_", ""))
    else:
        raise ValueError(f'strconv.ParseFloat: parsing "{text}": invalid syntax')
    if math.isinf(value):
        raise ValueError(f'strconv.ParseFloat: parsing "{text}": value out of range')
    return value


def _convert(data_type: str, text: str, raw: bytes) -> int | float | str | bool:
    if data_type == "int":
        return go_atoi(text)
    if data_type == "float":
        return go_parse_float(text)
    if data_type == "bool":
        if text in _BOOLEANS:
            return _BOOLEANS[text]
        raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')
    if data_type == "base64":
        return base64.b64encode(raw).decode()
    if data_type in ("auto_integer", "auto_float"):
        try:
            return go_atoi(text) if data_type == "auto_integer" else go_parse_float(text)
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
            value = _convert(self.data_type, text, data)
        except ValueError as exc:
            raise ParseError(str(exc)) from None
        return [Metric(self.metric_name, {}, {self.field_name: value}, time.time_ns())]


@PARSERS.add("value")
def make_value_parser(opts: PluginOptions, metric_name: str) -> ValueParser:
    data_type = opts.string("data_type", "")
    if data_type not in _TYPES:
        raise ConfigError(f'plugin {opts.plugin}: unknown datatype "{data_type}"')
    return ValueParser(metric_name, _TYPES[data_type], opts.string("value_field_name", "") or "value")
