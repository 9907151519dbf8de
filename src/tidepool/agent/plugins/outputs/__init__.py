"""Outputs, keyed by Telegraf's names: http, file."""

from collections.abc import Callable

from tidepool.agent.options import PluginOptions
from tidepool.agent.plugins import Output, Registry, Serializer

OutputFactory = Callable[[PluginOptions, Serializer], Output]
OUTPUTS: Registry[OutputFactory] = Registry("outputs")

from tidepool.agent.plugins.outputs import file, http  # noqa: E402  (registration side effect)

__all__ = ["OUTPUTS", "OutputFactory", "file", "http"]
