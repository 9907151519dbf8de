"""The memtable: accepted writes per (tenant, database, table) as Arrow chunks in write order, until a flush.

Chunks keep only the columns their write carried; `conform` pads and orders them to the table's current schema.
Rows are not deduplicated on insert; `dedup` merges rows of one (series, time) with the later write winning
field by field, which flush and queries apply.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

TableKey = tuple[str, str, str]  # tenant, database, table


@dataclass
class TableBuffer:
    """Chunks of one table, oldest first. Invariant: every chunk has a non-null `time` column."""

    chunks: list[pa.Table] = field(default_factory=list)
    nbytes: int = 0
    rows: int = 0
    min_time: int = 2**63 - 1
    max_time: int = -(2**63)
    version: int = 0


class Memtable:
    """All buffered tables; thread-safe for concurrent inserts and snapshots."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tables: dict[TableKey, TableBuffer] = {}
        self.nbytes = 0
        self.rows = 0

    def insert(self, key: TableKey, chunk: pa.Table, min_time: int, max_time: int) -> None:
        with self._lock:
            buffer = self.tables.setdefault(key, TableBuffer())
            buffer.chunks.append(chunk)
            buffer.nbytes += chunk.nbytes
            buffer.rows += chunk.num_rows
            buffer.min_time = min(buffer.min_time, min_time)
            buffer.max_time = max(buffer.max_time, max_time)
            buffer.version += 1
            self.nbytes += chunk.nbytes
            self.rows += chunk.num_rows

    def snapshot(self, key: TableKey) -> TableBuffer | None:
        """An immutable view (a copy of the chunk list) of one table's buffer."""
        with self._lock:
            buffer = self.tables.get(key)
            if buffer is None:
                return None
            return TableBuffer(list(buffer.chunks), buffer.nbytes, buffer.rows, buffer.min_time, buffer.max_time,
                               buffer.version)  # fmt: skip

    def drop(self, predicate: object) -> None:
        """Forget every table whose key satisfies `predicate(key)` (DROP DATABASE / TABLE)."""
        with self._lock:
            for key in [k for k in self.tables if predicate(k)]:  # type: ignore[operator]
                buffer = self.tables.pop(key)
                self.nbytes -= buffer.nbytes
                self.rows -= buffer.rows


def conform(chunk: pa.Table, schema: pa.Schema) -> pa.Table:
    """`chunk` with exactly `schema`'s columns, in order; absent columns are null."""
    names = set(chunk.column_names)
    columns = []
    for fld in schema:
        if fld.name in names:
            column = chunk.column(fld.name)
            if column.type != fld.type:
                column = column.cast(fld.type)
            columns.append(column)
        else:
            columns.append(pa.nulls(chunk.num_rows, fld.type))
    return pa.Table.from_arrays(columns, schema=schema)


def combine(chunks: list[pa.Table], schema: pa.Schema) -> pa.Table:
    if not chunks:
        return schema.empty_table()
    return pa.concat_tables([conform(c, schema) for c in chunks])


def dedup(table: pa.Table, tags: list[str]) -> pa.Table:
    """Rows of `table` (oldest first) with one row per (series, time), sorted by series then time.

    Where several rows share a key, each field takes its last non-null value (CnosDB's field-wise upsert).
    """
    if table.num_rows == 0:
        return table
    keys = [*tags, "time"]
    order = [(name, "ascending", "at_start") for name in keys]
    indices = pc.sort_indices(table, sort_keys=order)
    ordered = table.take(indices)  # stable sort: rows of one key stay in write order
    if not _has_adjacent_duplicates(ordered, keys):
        return ordered
    fields = [n for n in table.column_names if n not in keys]
    if not fields:
        grouped = ordered.group_by(keys, use_threads=False).aggregate([])
    else:
        grouped = ordered.group_by(keys, use_threads=False).aggregate(
            [(name, "last", pc.ScalarAggregateOptions(skip_nulls=True)) for name in fields]
        )
        grouped = grouped.rename_columns([c if c in keys else c.removesuffix("_last") for c in grouped.column_names])
    merged = grouped.select(table.column_names).cast(table.schema)
    return merged.take(pc.sort_indices(merged, sort_keys=order))


def _has_adjacent_duplicates(table: pa.Table, keys: list[str]) -> bool:
    if table.num_rows < 2:
        return False
    same: pa.Array | None = None
    for name in keys:
        column = table.column(name).combine_chunks()
        head, tail = column.slice(0, len(column) - 1), column.slice(1)
        equal = pc.equal(head, tail)
        both_null = pc.and_(pc.is_null(head), pc.is_null(tail))
        equal = pc.or_kleene(pc.fill_null(equal, False), both_null)
        same = equal if same is None else pc.and_(same, equal)
    assert same is not None
    return bool(pc.any(same).as_py())
