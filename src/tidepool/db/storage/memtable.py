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
    ranges: list[tuple[int, int]] = field(default_factory=list)  # (min, max) time of each chunk
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
            buffer.ranges.append((min_time, max_time))
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
            return TableBuffer(list(buffer.chunks), list(buffer.ranges), buffer.nbytes, buffer.rows, buffer.min_time,
                               buffer.max_time, buffer.version)  # fmt: skip

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
    series = series_ids(table, tags)
    keyed = table.append_column(_SERIES, series)
    order = [(_SERIES, "ascending"), ("time", "ascending")]
    ordered = keyed.take(pc.sort_indices(keyed, sort_keys=order))  # stable: one key's rows stay in write order
    if _has_adjacent_duplicates(ordered, [_SERIES, "time"]):
        fields = [n for n in table.column_names if n not in tags and n != "time"]
        ordered = ordered.append_column(_ROW, pa.array(range(ordered.num_rows), pa.int64()))
        grouped = ordered.group_by([_SERIES, "time"], use_threads=False).aggregate(
            [(name, "last", pc.ScalarAggregateOptions(skip_nulls=True)) for name in fields] + [(_ROW, "min")]
        )
        grouped = grouped.take(pc.sort_indices(grouped, sort_keys=order))
        first_rows = grouped.column(f"{_ROW}_min")
        columns = {name: ordered.column(name).take(first_rows) for name in tags}  # equal within a group
        columns.update({name: grouped.column(f"{name}_last") for name in fields})
        columns["time"] = grouped.column("time")
        return pa.table([columns[name] for name in table.column_names], schema=table.schema)
    return ordered.select(table.column_names).cast(table.schema)


_SERIES = "__series"
_ROW = "__row"


def series_ids(table: pa.Table, tags: list[str]) -> pa.Array:
    """A dense int64 id per row that orders rows as their tag values do (tags in the given order, null first):
    equal ids mean the same series. Linear: each tag is hashed, only its distinct values are sorted."""
    ids = pa.nulls(table.num_rows, pa.int64()).fill_null(0)
    for name in tags:
        ranks = _dense_ranks(table.column(name).combine_chunks())  # 0 = null, then 1.. in value order
        width = pc.max(ranks).as_py() + 1
        ids = _dense_ranks(pc.add(pc.multiply(ids, width), ranks))
    return ids


def _dense_ranks(values: pa.Array) -> pa.Array:
    """For each value, 1 + its position among the sorted distinct values; 0 for null."""
    encoded = values.dictionary_encode()
    dictionary = encoded.dictionary
    order = pc.sort_indices(dictionary)
    rank_of_entry = pc.add(pc.sort_indices(order), 1)  # order is a permutation: sorting it inverts it
    ranks = pc.take(rank_of_entry, encoded.indices)
    return pc.fill_null(ranks, 0).cast(pa.int64())


def _has_adjacent_duplicates(table: pa.Table, keys: list[str]) -> bool:
    if table.num_rows < 2:
        return False
    same: pa.Array | None = None
    for name in keys:
        column = table.column(name).combine_chunks()
        equal = pc.equal(column.slice(0, len(column) - 1), column.slice(1))
        same = equal if same is None else pc.and_(same, equal)
    assert same is not None
    return bool(pc.any(same).as_py())
