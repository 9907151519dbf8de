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
import pyarrow.parquet as pq

from tidepool.db.catalog import fsync_dir, write_atomically

ROW_GROUP_ROWS = 128 * 1024


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


def write_parquet(data_dir: Path, relative: str, table: pa.Table, tags: list[str]) -> int:
    """Write `table` durably at `data_dir/relative` (via a temporary name); returns the file size."""
    final = data_dir / relative
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(final.name + ".tmp")
    doubles = [f.name for f in table.schema if pa.types.is_floating(f.type)]
    pq.write_table(
        table,
        tmp,
        compression="zstd",
        compression_level=3,
        use_dictionary=tags or False,
        use_byte_stream_split=doubles or False,
        row_group_size=ROW_GROUP_ROWS,
        write_statistics=True,
    )
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    fsync_dir(final.parent)
    return final.stat().st_size


def check_readable(path: Path) -> str | None:
    """None if the footer of the Parquet file at `path` can be read; otherwise why not."""
    try:
        pq.read_metadata(path)
    except (OSError, pa.ArrowException) as exc:
        return str(exc)
    return None
