"""Immutable Parquet files and the manifest that lists them.

A file holds rows of one table and one time window (the database's vnode duration), deduplicated and sorted by
series then time, zstd-compressed with dictionary-encoded tags. It is written to a temporary name, fsynced and
renamed; only then does the manifest — one JSON document replaced atomically — list it. A reader therefore never
sees a half-written file, and a file on disk but not in the manifest is debris of a crash, removed at start.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tidepool.db.catalog import fsync_dir, write_atomically

ROW_GROUP_ROWS = 128 * 1024
MAX_SCALE = 6  # decimal digits tried when storing DOUBLE columns as scaled integers


@dataclass
class DataFile:
    """One Parquet file. `seq` orders files by the age of their newest row: a larger seq wins on duplicates."""

    id: int
    seq: int
    tenant: str
    database: str
    table: str
    window: int  # window start, in the database's time unit
    path: str  # relative to the data directory
    min_time: int
    max_time: int
    rows: int
    bytes: int
    level: int = 0
    scales: dict[str, int] = field(default_factory=dict)  # DOUBLE column → decimal digits it is stored with


@dataclass
class Manifest:
    path: Path
    files: list[DataFile] = field(default_factory=list)
    next_file_id: int = 1
    wal_checkpoint: int = 1  # WAL segments before this one are fully in files
    version: int = 0

    @classmethod
    def load(cls, path: Path) -> Manifest:
        manifest = cls(path)
        if path.exists():
            doc = json.loads(path.read_text())
            manifest.files = [DataFile(**f) for f in doc["files"]]
            manifest.next_file_id = doc["next_file_id"]
            manifest.wal_checkpoint = doc["wal_checkpoint"]
        return manifest

    def save(self) -> None:
        doc = {
            "version": 1,
            "next_file_id": self.next_file_id,
            "wal_checkpoint": self.wal_checkpoint,
            "files": [asdict(f) for f in self.files],
        }
        write_atomically(self.path, json.dumps(doc).encode())
        self.version += 1

    def allocate_id(self) -> int:
        file_id = self.next_file_id
        self.next_file_id += 1
        return file_id

    def table_files(self, tenant: str, database: str, table: str) -> list[DataFile]:
        return sorted(
            (f for f in self.files if f.tenant == tenant and f.database == database and f.table == table),
            key=lambda f: f.seq,
        )


def encode_decimals(table: pa.Table) -> tuple[pa.Table, dict[str, int]]:
    """DOUBLE columns whose every value is a decimal with at most MAX_SCALE digits (sensor readings, TSBS)
    become int64 `round(v * 10**s)`, which delta-encodes to about a third of the size.

    Only when decoding (`v = i / 10**s`, one correctly rounded IEEE division) gives back every value bit for bit
    is a column converted, so the round trip is exact.
    """
    scales: dict[str, int] = {}
    columns = []
    for fld, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_float64(fld.type) and column.null_count < len(column):
            for scale in range(MAX_SCALE + 1):
                factor = float(10**scale)
                scaled = pc.round(pc.multiply(column, factor))
                limit = pc.max(pc.abs(scaled)).as_py()
                if limit is None or not limit < 2**53:
                    break
                integers = scaled.cast(pa.int64())
                decoded = pc.divide(integers.cast(pa.float64()), factor)
                if pc.all(pc.equal(_bits(decoded), _bits(column))).as_py():  # bit for bit, so -0.0 stays a double
                    column = integers
                    scales[fld.name] = scale
                    break
        columns.append(column)
    if not scales:
        return table, scales
    schema = pa.schema([pa.field(f.name, pa.int64()) if f.name in scales else f for f in table.schema])
    return pa.Table.from_arrays(columns, schema=schema), scales


def _bits(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return array.view(pa.int64())


def decode_decimals(table: pa.Table, scales: dict[str, int]) -> pa.Table:
    for name, scale in scales.items():
        if name in table.column_names:
            index = table.column_names.index(name)
            decoded = pc.divide(table.column(index).cast(pa.float64()), float(10**scale))
            table = table.set_column(index, pa.field(name, pa.float64()), decoded)
    return table


def write_parquet(data_dir: Path, relative: str, table: pa.Table, tags: list[str]) -> tuple[int, dict[str, int]]:
    """Write `table` durably at `data_dir/relative` (via a temporary name); returns the file size and the scales
    of DOUBLE columns stored as decimals (see `encode_decimals`)."""
    final = data_dir / relative
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(final.name + ".tmp")
    stored, scales = encode_decimals(table)
    delta = {name: "DELTA_BINARY_PACKED" for name in ["time", *scales]}
    pq.write_table(
        stored,
        tmp,
        compression="zstd",
        compression_level=3,
        use_dictionary=tags or False,
        column_encoding=delta,
        row_group_size=ROW_GROUP_ROWS,
        write_statistics=True,
    )
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    fsync_dir(final.parent)
    return final.stat().st_size, scales


def check_readable(path: Path) -> str | None:
    """None if the footer of the Parquet file at `path` can be read; otherwise why not."""
    try:
        pq.read_metadata(path)
    except (OSError, pa.ArrowException) as exc:
        return str(exc)
    return None
