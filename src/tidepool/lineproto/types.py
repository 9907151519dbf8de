"""The values line protocol carries: field types, parsed batches (columnar), metrics to serialize, errors."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import pyarrow as pa


class FieldType(enum.IntEnum):
    """The five field types of InfluxDB/CnosDB line protocol, named as CnosDB reports them."""

    FLOAT = 0  # F64, SQL DOUBLE
    INTEGER = 1  # I64, SQL BIGINT, written `1i`
    UNSIGNED = 2  # U64, SQL BIGINT UNSIGNED, written `1u`
    STRING = 3  # Utf8, SQL STRING, written `"…"`
    BOOLEAN = 4  # Boolean, SQL BOOLEAN, written t/true/f/false in any accepted spelling

    @property
    def arrow_type(self) -> pa.DataType:
        return _ARROW_TYPES[self]

    @property
    def cnosdb_name(self) -> str:
        """The short name CnosDB uses in type-conflict messages (`found I64 expected F64`)."""
        return _CNOSDB_NAMES[self]


_ARROW_TYPES = {
    FieldType.FLOAT: pa.float64(),
    FieldType.INTEGER: pa.int64(),
    FieldType.UNSIGNED: pa.uint64(),
    FieldType.STRING: pa.string(),
    FieldType.BOOLEAN: pa.bool_(),
}
_CNOSDB_NAMES = {
    FieldType.FLOAT: "F64",
    FieldType.INTEGER: "I64",
    FieldType.UNSIGNED: "U64",
    FieldType.STRING: "Utf8",
    FieldType.BOOLEAN: "Boolean",
}


@dataclass(frozen=True)
class MeasurementBatch:
    """All points of one measurement in a parsed body, as Arrow columns of equal length.

    Invariant: `time` and every tag and field array have `num_rows` entries; a tag or field absent from a line
    is null in that row. Rows keep the order of the lines in the body.
    """

    name: str
    time: pa.Array  # int64, nanoseconds since the epoch
    tags: dict[str, pa.Array]  # tag key → string array
    fields: dict[str, tuple[FieldType, pa.Array]]  # field key → (type, array of that type)

    @property
    def num_rows(self) -> int:
        return len(self.time)

    def to_table(self) -> pa.Table:
        """`time` as timestamp[ns], then tags sorted by key, then fields sorted by key."""
        columns: dict[str, pa.Array] = {"time": self.time.cast(pa.timestamp("ns"))}
        for key in sorted(self.tags):
            columns[key] = self.tags[key]
        for key in sorted(self.fields):
            columns[key] = self.fields[key][1]
        return pa.table(columns)


@dataclass(frozen=True)
class ParsedBatch:
    """A whole line-protocol body, split by measurement (in order of first appearance)."""

    measurements: dict[str, MeasurementBatch]
    num_points: int


@dataclass(frozen=True)
class LineError:
    """One bad line: 1-based line number and column, what was expected, and the line itself."""

    line: int
    column: int
    message: str
    text: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


class LineProtocolError(ValueError):
    """A body with at least one bad line; the whole body is rejected and every bad line is reported."""

    def __init__(self, errors: list[LineError]) -> None:
        self.errors = errors
        shown = "; ".join(str(e) for e in errors[:10])
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        super().__init__(f"invalid line protocol: {shown}{more}")


FieldValue = float | int | str | bool


@dataclass
class Metric:
    """One point as Telegraf holds it: a name, tags, typed fields and a nanosecond timestamp.

    Python `int` fields are integers (`i`) unless listed in `unsigned`, then `u`; `float` is float,
    `bool` boolean, `str` string.
    """

    name: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time: int
    unsigned: frozenset[str] = field(default_factory=frozenset)
