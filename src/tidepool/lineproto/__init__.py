"""InfluxDB/CnosDB line protocol: the one module shared by the agent (serialize) and the database (parse).

Pure functions, no I/O. `parse` turns a body into Arrow columns per measurement, rejecting the whole body if any
line is bad; `serialize_metric`/`serialize_batch` write metrics exactly as Telegraf's influx serializer does.
"""

from tidepool.lineproto.parse import PRECISION_FACTORS, parse, parse_points, precision_factor
from tidepool.lineproto.serialize import (
    InfluxSerializer,
    SerializeError,
    format_float,
    serialize_batch,
    serialize_metric,
)
from tidepool.lineproto.types import (
    FieldType,
    LineError,
    LineProtocolError,
    MeasurementBatch,
    Metric,
    ParsedBatch,
)

__all__ = [
    "PRECISION_FACTORS",
    "FieldType",
    "InfluxSerializer",
    "LineError",
    "LineProtocolError",
    "MeasurementBatch",
    "Metric",
    "ParsedBatch",
    "SerializeError",
    "format_float",
    "parse",
    "parse_points",
    "precision_factor",
    "serialize_batch",
    "serialize_metric",
]
