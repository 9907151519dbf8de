"""parsers.json — Telegraf's JSON parser v1 (`data_format = "json"`).

Options (read from the input's table):
  json_query          GJSON-style path applied first (dotted keys, array indexes, `\\.` escapes); must give an
                      object, an array or null (null, or a path that leads nowhere → no metrics)
  tag_keys            globs: flattened keys that become tags (numbers as shortest decimal, bools true/false)
  json_string_fields  globs: string/bool values kept as fields (otherwise dropped)
  json_name_key       key whose string value names the metric (default: the input's name, "kafka_consumer")
  json_time_key       key holding the timestamp (requires json_time_format); removed from the fields
  json_time_format    unix | unix_ms | unix_us | unix_ns | Go named layout (rfc3339, …) | Go layout; an integer
                      time (top-level key) is read exactly, not through float64 as Telegraf does
  json_timezone       zone for layouts without offset: "" (UTC), "Local" or an IANA name
  json_strict         with an array, an object that fails (e.g. no json_time_key) fails the whole payload
                      (default true); an element that is not an object always does
Telegraf's rules: nested keys join with `_` (`a.b` → `a_b`, `a[0]` → `a_0`); every number is a float; null is
skipped; every metric of one payload gets the same time (now) unless json_time_key says otherwise.
"""

from __future__ import annotations

import json as stdlib_json
import time
from typing import Any

import orjson

from tidepool.agent.filters import Globs
from tidepool.agent.options import ConfigError, PluginOptions
from tidepool.agent.plugins import ParseError
from tidepool.agent.plugins.parsers import PARSERS
from tidepool.agent.timeparse import TimestampError, parse_timestamp
from tidepool.lineproto import Metric

WRONG_TYPE = "must be an object or an array of objects"


def flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """Telegraf's JSONFlattener.FullFlattenJSON with strings and bools kept."""
    if isinstance(value, dict):
        for key, inner in value.items():
            flatten(f"{prefix}_{key}" if prefix else key, inner, out)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            flatten(f"{prefix}_{index}" if prefix else str(index), inner, out)
    elif value is None:
        return
    elif isinstance(value, bool | str):
        out[prefix] = value
    elif isinstance(value, int | float):
        out[prefix] = float(value)


def _reject_constant(name: str) -> None:
    raise ValueError(f"invalid JSON value {name}")


def _decode_slowly(text: bytes) -> Any:
    """What orjson refused: retry after trimming; integers beyond 64 bits become floats, as Go reads them."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "64-bit" not in str(exc):
            raise ParseError(f"invalid JSON: {exc}") from None
    try:
        return stdlib_json.loads(text, parse_int=float, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ParseError(f"invalid JSON: {exc}") from None


def _tag_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        from tidepool.lineproto import format_float

        return format_float(value)
    return None


def _query_path(path: str) -> list[str]:
    parts, current, i = [], [], 0
    while i < len(path):
        ch = path[i]
        if ch == "\\" and i + 1 < len(path):
            current.append(path[i + 1])
            i += 2
            continue
        if ch == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


class JSONParser:
    def __init__(
        self,
        metric_name: str,
        *,
        query: str = "",
        tag_keys: list[str] | None = None,
        string_fields: list[str] | None = None,
        name_key: str = "",
        time_key: str = "",
        time_format: str = "",
        timezone: str = "",
        strict: bool = True,
    ) -> None:
        self.metric_name = metric_name
        self.query = _query_path(query) if query else []
        self.tag_filter = Globs(tag_keys or [])
        self.string_filter = Globs(string_fields or [])
        self.name_key = name_key
        self.time_key = time_key
        self.time_format = time_format
        self.timezone = timezone
        self.strict = strict
        self.plain = not (self.tag_filter or self.string_filter or name_key or time_key)

    def parse(self, data: bytes) -> list[Metric]:
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            text = data.strip().removeprefix(b"\xef\xbb\xbf").strip()
            if not text:
                return []
            try:
                document = _decode_slowly(text)
            except ParseError:
                if self.query:  # GJSON does not validate: a path in a broken document is just null
                    return []
                raise
        now = time.time_ns()
        if self.query:
            document = self._apply_query(document)
        if isinstance(document, dict):
            return [self._metric(document, now)]
        if isinstance(document, list):
            metrics: list[Metric] = []
            for element in document:
                if not isinstance(element, dict):  # an error even when not strict, as in Telegraf
                    raise ParseError(WRONG_TYPE)
                try:
                    metrics.append(self._metric(element, now))
                except ParseError:
                    if self.strict:
                        raise
            return metrics
        if document is None:
            return []
        raise ParseError(WRONG_TYPE)

    def _apply_query(self, document: Any) -> Any:
        """The value at `json_query`; a path that leads nowhere is null (no metrics), as in GJSON."""
        for part in self.query:
            if isinstance(document, dict) and part in document:
                document = document[part]
            elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
                document = document[int(part)]
            else:
                return None
        if not isinstance(document, dict | list) and document is not None:
            kind = {str: "String", bool: "True" if document else "False"}.get(type(document), "Number")
            raise ParseError(f"query path must lead to a JSON object, array of objects or null, but lead to: {kind}")
        return document

    def _metric(self, document: dict[str, Any], now: int) -> Metric:
        if self.plain:
            fields: dict[str, Any] = {}
            nested = False
            for key, value in document.items():
                kind = type(value)
                if kind is float:
                    fields[key] = value
                elif kind is int:
                    fields[key] = float(value)
                elif kind is dict or kind is list:
                    nested = True
                    flatten(key, value, fields)
            if nested:
                fields = {k: v for k, v in fields.items() if type(v) is float}
            return Metric(self.metric_name, {}, fields, now)
        fields = {}
        flatten("", document, fields)
        name = self.metric_name
        if self.name_key:
            candidate = fields.get(self.name_key)
            if isinstance(candidate, str):
                name = candidate
        timestamp = now
        if self.time_key:
            if not self.time_format:
                raise ParseError("use of 'json_time_key' requires 'json_time_format'")
            if fields.get(self.time_key) is None:
                raise ParseError("'json_time_key' could not be found")
            value = fields.pop(self.time_key)
            exact = document.get(self.time_key)
            if type(exact) is int:
                value = exact  # the integer as sent: float64 would round unix_ns to 256 ns steps
            try:
                timestamp = parse_timestamp(self.time_format, value, self.timezone)
            except TimestampError as exc:
                raise ParseError(str(exc)) from None
        tags: dict[str, str] = {}
        if self.tag_filter:
            for key in [k for k in fields if self.tag_filter.match(k)]:
                text = _tag_text(fields[key])
                if text is not None:
                    tags[key] = text
                    del fields[key]
        for key in [k for k, v in fields.items() if isinstance(v, str | bool)]:
            if not (self.string_filter and self.string_filter.match(key)):
                del fields[key]
        return Metric(name, tags, fields, timestamp)


@PARSERS.add("json")
def make_json_parser(opts: PluginOptions, metric_name: str) -> JSONParser:
    time_key = opts.string("json_time_key")
    time_format = opts.string("json_time_format")
    timezone = opts.string("json_timezone")
    if timezone not in ("", "Local", "UTC"):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"plugin {opts.plugin}: unknown time zone {timezone}") from None
    return JSONParser(
        metric_name,
        query=opts.string("json_query"),
        tag_keys=opts.strings("tag_keys"),
        string_fields=opts.strings("json_string_fields"),
        name_key=opts.string("json_name_key"),
        time_key=time_key,
        time_format=time_format,
        timezone=timezone,
        strict=opts.boolean("json_strict", True),
    )
