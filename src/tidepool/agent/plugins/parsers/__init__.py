"""Parsers, keyed by Telegraf's `data_format`: json (v1), influx, value."""

from tidepool.agent.plugins import ParserFactory, Registry

PARSERS: Registry[ParserFactory] = Registry("parsers")

from tidepool.agent.plugins.parsers import influx, json, value  # noqa: E402  (registration side effect)

__all__ = ["PARSERS", "influx", "json", "value"]
