"""serializers.influx — InfluxDB line protocol, byte for byte as Telegraf's influx serializer writes it.

Options (read from the output's table):
  influx_max_line_bytes  split a metric's fields over several lines of at most this many bytes (0: never)
  influx_sort_fields     write fields sorted by key (default false: in the metric's order)
  influx_uint_support    write unsigned fields as `42u` (default false: clipped to the int64 maximum, `i`)
  influx_omit_timestamp  leave the timestamp out (default false)
The serializer itself is tidepool.lineproto's InfluxSerializer (shared with the database's tests and tools): Telegraf's
rules, including its max_line_bytes accounting and "need more space" failure, and a per-series header cache. A
metric that cannot be written (no name, no serializable field, a field too long for the line limit) is skipped.
"""

from __future__ import annotations

from tidepool.agent.options import PluginOptions
from tidepool.agent.plugins.serializers import SERIALIZERS
from tidepool.lineproto.serialize import InfluxSerializer


@SERIALIZERS.add("influx")
def make_influx_serializer(opts: PluginOptions) -> InfluxSerializer:
    return InfluxSerializer(
        max_line_bytes=opts.integer("influx_max_line_bytes", 0),
        sort_fields=opts.boolean("influx_sort_fields", False),
        uint_support=opts.boolean("influx_uint_support", False),
        omit_timestamp=opts.boolean("influx_omit_timestamp", False),
    )
