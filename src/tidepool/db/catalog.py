"""The catalog: tenants → databases (TTL, shards, vnode duration, precision) → tables (time, tags, typed fields).

It is one JSON document, rewritten atomically (temporary file, fsync, rename, fsync of the directory) on every
change, so a crash leaves either the old or the new catalog, never a mix. Thread safety is the engine's job.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from tidepool.db import errors

DEFAULT_TENANT = "cnosdb"
DEFAULT_DATABASE = "public"

_SECOND = 10**9
# Units and lengths as humantime (which CnosDB uses): a month is 30.44 days, a year 365.25 days.
NS_PER_UNIT = {
    "ns": 1, "nsec": 1, "nanosecond": 1, "nanoseconds": 1,
    "us": 1_000, "usec": 1_000, "microsecond": 1_000, "microseconds": 1_000,
    "ms": 1_000_000, "msec": 1_000_000, "millisecond": 1_000_000, "milliseconds": 1_000_000,
    "s": _SECOND, "sec": _SECOND, "secs": _SECOND, "second": _SECOND, "seconds": _SECOND,
    "m": 60 * _SECOND, "min": 60 * _SECOND, "mins": 60 * _SECOND, "minute": 60 * _SECOND, "minutes": 60 * _SECOND,
    "h": 3600 * _SECOND, "hr": 3600 * _SECOND, "hrs": 3600 * _SECOND, "hour": 3600 * _SECOND, "hours": 3600 * _SECOND,
    "d": 86400 * _SECOND, "day": 86400 * _SECOND, "days": 86400 * _SECOND,
    "w": 7 * 86400 * _SECOND, "week": 7 * 86400 * _SECOND, "weeks": 7 * 86400 * _SECOND,
    "M": 2_630_016 * _SECOND, "month": 2_630_016 * _SECOND, "months": 2_630_016 * _SECOND,
    "y": 31_557_600 * _SECOND, "year": 31_557_600 * _SECOND, "years": 31_557_600 * _SECOND,
}  # fmt: skip
_DURATION_PART = re.compile(r"\s*(\d+)\s*([A-Za-z]+)")
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*\Z")
_BYTES_PER_UNIT = {
    "": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9, "GB": 10**9,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30,
}  # fmt: skip
PRECISIONS = {"NS": "ns", "US": "us", "MS": "ms"}

# SQL type name → Arrow type, for FIELD columns.
FIELD_TYPES: dict[str, pa.DataType] = {
    "DOUBLE": pa.float64(),
    "BIGINT": pa.int64(),
    "BIGINT UNSIGNED": pa.uint64(),
    "STRING": pa.string(),
    "BOOLEAN": pa.bool_(),
}


def parse_duration(text: str) -> int | None:
    """A CnosDB duration ('30d', '2y1M', '90 minutes', 'INF') in nanoseconds; None means infinite."""
    if text.strip().upper() in ("INF", "INFINITE", "INFINITY"):
        return None
    nanos, position = 0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        number, unit = match.groups()
        factor = NS_PER_UNIT.get(unit) or NS_PER_UNIT.get(unit.lower())
        if factor is None:
            raise errors.invalid_param(f"unknown duration unit '{unit}' in '{text}'")
        nanos += int(number) * factor
        position = match.end()
    if position == 0 or text[position:].strip():
        raise errors.invalid_param(f"invalid duration '{text}'")
    if nanos <= 0:
        raise errors.invalid_param(f"duration must be positive: '{text}'")
    return nanos


def format_duration(nanos: int | None) -> str:
    """How DESCRIBE DATABASE shows a duration, as humantime does: INF, 1year, 2years 1month, 30days, 12h 5m."""
    if nanos is None:
        return "INF"
    seconds, rest = divmod(nanos, _SECOND)
    parts = []
    for length, one, many in ((31_557_600, "year", "years"), (2_630_016, "month", "months"), (86400, "day", "days"),
                              (3600, "h", "h"), (60, "m", "m"), (1, "s", "s")):  # fmt: skip
        count, seconds = divmod(seconds, length)
        if count:
            parts.append(f"{count}{one if count == 1 else many}")
    for length, unit in ((1_000_000, "ms"), (1_000, "us"), (1, "ns")):
        count, rest = divmod(rest, length)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts) or "0s"


def parse_size(text: str) -> int:
    """A CnosDB byte size ('128MiB', '300M' = 300 × 10⁶, '1GiB') in bytes."""
    match = _SIZE_RE.match(text)
    factor = _BYTES_PER_UNIT.get(match.group(2).upper()) if match else None
    if match is None or factor is None:
        raise errors.invalid_param(f"invalid size '{text}'")
    return int(float(match.group(1)) * factor)


def format_size(size: int) -> str:
    """As DESCRIBE DATABASE shows sizes: `128 MiB`, `286.102294921875 MiB`."""
    mib = size / 2**20
    return f"{int(mib) if mib.is_integer() else mib!r} MiB"


def check_name(name: str) -> None:
    if not name.strip():
        raise errors.invalid_param("Name cannot be empty or contain only spaces")
    if "/" in name:
        raise errors.sql_parser(f"not supported keyword contains '/': {name}")


@dataclass
class DatabaseOptions:
    """CnosDB's per-database options; only ttl, vnode_duration and precision change tidepool's behaviour."""

    ttl_ns: int | None = None
    shard: int = 1
    vnode_duration_ns: int = NS_PER_UNIT["y"]
    replica: int = 1
    precision: str = "NS"
    max_memcache_size: int = 128 * 2**20
    memcache_partitions: int = 16
    wal_max_file_size: int = 128 * 2**20
    wal_sync: bool = False
    strict_write: bool = False
    max_cache_readers: int = 32

    @property
    def time_unit(self) -> str:
        return PRECISIONS[self.precision]


@dataclass
class Column:
    name: str
    kind: str  # TIME, TAG or FIELD
    sql_type: str  # TIMESTAMP(NANOSECOND), STRING, DOUBLE, BIGINT, BIGINT UNSIGNED, BOOLEAN
    codec: str = "DEFAULT"


@dataclass
class Table:
    """A measurement: `time`, then tags and fields in the order they were created."""

    name: str
    columns: list[Column] = field(default_factory=list)

    def column(self, name: str) -> Column | None:
        for column in self.columns:
            if column.name == name:
                return column
        return None

    @property
    def tags(self) -> list[str]:
        return [c.name for c in self.columns if c.kind == "TAG"]

    @property
    def fields(self) -> list[Column]:
        return [c for c in self.columns if c.kind == "FIELD"]

    def arrow_schema(self, time_unit: str) -> pa.Schema:
        """`SELECT *` order as CnosDB: time, then the columns in the order they were created (a new table lists
        its tags before its fields; columns added later follow)."""
        fields = [pa.field("time", pa.timestamp(time_unit), nullable=False)]
        for column in self.columns:
            if column.kind == "TAG":
                fields.append(pa.field(column.name, pa.string()))
            elif column.kind == "FIELD":
                fields.append(pa.field(column.name, FIELD_TYPES[column.sql_type]))
        return pa.schema(fields)


@dataclass
class Database:
    name: str
    options: DatabaseOptions = field(default_factory=DatabaseOptions)
    tables: dict[str, Table] = field(default_factory=dict)


@dataclass
class Catalog:
    """All tenants' databases and table schemas, persisted to `path`."""

    path: Path
    tenants: dict[str, dict[str, Database]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Catalog:
        catalog = cls(path)
        if path.exists():
            doc = json.loads(path.read_text())
            for tenant, databases in doc["tenants"].items():
                catalog.tenants[tenant] = {name: _database_from_json(name, d) for name, d in databases.items()}
        catalog.tenants.setdefault(DEFAULT_TENANT, {})
        if not path.exists():
            catalog.tenants[DEFAULT_TENANT][DEFAULT_DATABASE] = Database(DEFAULT_DATABASE)
            catalog.save()
        return catalog

    def save(self) -> None:
        doc = {
            "version": 1,
            "tenants": {
                tenant: {name: _database_to_json(db) for name, db in databases.items()}
                for tenant, databases in self.tenants.items()
            },
        }
        write_atomically(self.path, json.dumps(doc, indent=1).encode())

    def database(self, tenant: str, name: str) -> Database:
        databases = self.tenants.get(tenant)
        if databases is None:
            raise errors.tenant_not_found(tenant)
        db = databases.get(name)
        if db is None:
            raise errors.database_not_found(name)
        return db

    def has_database(self, tenant: str, name: str) -> bool:
        return name in self.tenants.get(tenant, {})


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new content, whole."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _database_to_json(db: Database) -> dict[str, Any]:
    return {
        "options": vars(db.options),
        "tables": {
            name: [[c.name, c.kind, c.sql_type, c.codec] for c in table.columns] for name, table in db.tables.items()
        },
    }


def _database_from_json(name: str, doc: dict[str, Any]) -> Database:
    tables = {tname: Table(tname, [Column(*c) for c in columns]) for tname, columns in doc.get("tables", {}).items()}
    return Database(name, DatabaseOptions(**doc["options"]), tables)
