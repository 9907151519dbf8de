"""Inputs, keyed by Telegraf's names: kafka_consumer, internal."""

from collections.abc import Callable

from tidepool.agent.options import PluginOptions
from tidepool.agent.plugins import Input, Parser, Registry

InputFactory = Callable[[PluginOptions, Parser | None, str], Input]  # (options, parser, plugin id for logs)
INPUTS: Registry[InputFactory] = Registry("inputs")
# Inputs that read a payload format: the loader builds their parser from `data_format` (default influx).
PARSER_INPUTS: set[str] = set()

from tidepool.agent.plugins.inputs import internal, kafka_consumer  # noqa: E402  (registration side effect)

__all__ = ["INPUTS", "PARSER_INPUTS", "InputFactory", "internal", "kafka_consumer"]
