"""Serializers, keyed by Telegraf's `data_format`: influx, json."""

from tidepool.agent.plugins import Registry, SerializerFactory

SERIALIZERS: Registry[SerializerFactory] = Registry("serializers")

from tidepool.agent.plugins.serializers import influx, json  # noqa: E402  (registration side effect)

__all__ = ["SERIALIZERS", "influx", "json"]
