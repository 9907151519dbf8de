"""The database engine: catalog, WAL, memtable, Parquet files, background flush/compaction/TTL, and SQL entry.

Write path: parse (line protocol → Arrow columns) → check schemas under the engine lock → catalog change (if
any) → WAL append → memtable insert → (per fsync policy) wait for the group fsync → acknowledge.
Read path: a snapshot (files + memtables) → one DataFusion table per measurement, without duplicate (series,
time) rows → the statement (see `db.query`).

All methods are blocking and thread-safe; the HTTP server calls them from an executor.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import itertools
import re
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from tidepool.db import errors
from tidepool.db.catalog import (
    Catalog,
    Column,
    Database,
    Table,
)
from tidepool.db.errors import DbError
from tidepool.db.storage import wal as wal_mod
from tidepool.db.storage.files import DataFile, Manifest, check_readable, decode_decimals, write_parquet
from tidepool.db.storage.memtable import Memtable, TableBuffer, combine, conform, dedup
from tidepool.lineproto import FieldType, LineProtocolError, ParsedBatch, parse, precision_factor
from tidepool.logs import get_logger

if TYPE_CHECKING:
    from datafusion import SessionContext

log = get_logger("db")

_SQL_TYPE_OF = {
    FieldType.FLOAT: "DOUBLE",
    FieldType.INTEGER: "BIGINT",
    FieldType.UNSIGNED: "BIGINT UNSIGNED",
    FieldType.STRING: "STRING",
    FieldType.BOOLEAN: "BOOLEAN",
}
_UNIT_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000}
_TIME_SQL_TYPE = {"ns": "TIMESTAMP(NANOSECOND)", "us": "TIMESTAMP(MICROSECOND)", "ms": "TIMESTAMP(MILLISECOND)"}
_REC_LINES = 1
_REC_TABLE = 2


@dataclass
class EngineConfig:
    """Tuning knobs; the defaults suit one machine. `fsync`: per-write | interval (default) | off."""

    fsync: str = "interval"
    fsync_interval_s: float = 0.1
    memtable_bytes: int = 128 * 1024 * 1024  # flush when the memtables hold this much Arrow data
    flush_age_s: float = 300.0  # ... or when the oldest unflushed write is this old
    compact_min_files: int = 4  # merge a window's small files when it has this many (overlapping ones always)
    compact_max_rows: int = 2_000_000  # largest merge (rows are read into memory to deduplicate)
    background_interval_s: float = 1.0  # how often flush age, compaction and TTL are checked
    background: bool = True  # run flush/compaction/TTL in a background thread


@dataclass
class QueryResult:
    """Rows of one statement: an Arrow schema and a (possibly lazy) stream of batches."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]

    def to_table(self) -> pa.Table:
        return pa.Table.from_batches(list(self.batches), schema=self.schema)


@dataclass
class Chunk:
    """The points of one measurement in one write, converted to the database's time unit."""

    table: str
    data: pa.Table
    tags: list[str]
    fields: dict[str, str]  # field name → SQL type
    min_time: int
    max_time: int


@dataclass
class TableSnapshot:
    """What a query reads of one table: files (oldest first) and memtable buffers (older first)."""

    schema: pa.Schema
    tags: list[str]
    vnode: int  # window length in the database's time unit
    files: list[DataFile]
    buffers: list[TableBuffer] = field(default_factory=list)


class Engine:
    """One data directory's database. Invariants: every acknowledged write is in the WAL (from the manifest's
    checkpoint on) or in a file listed in the manifest; a query sees each (series, time) once."""

    def __init__(self, data_dir: Path, config: EngineConfig) -> None:
        self.data_dir = data_dir
        self.config = config
        self._lock = threading.RLock()  # catalog, manifest list, memtable swap, WAL order
        self._maintenance = threading.RLock()  # one flush / compaction / delete / drop at a time
        self._flushed = threading.Condition(self._lock)
        self.catalog = Catalog.load(data_dir / "catalog.json")
        self.manifest = Manifest.load(data_dir / "manifest.json")
        self.memtable = Memtable()
        self._frozen: list[Memtable] = []
        self._memtable_since: float | None = None
        self._obsolete: list[Path] = []
        self._active_readers = 0
        # id(first chunk) → (first chunk, chunk count, deduplicated rows): memtable rows merged once per change
        self._dedup_cache: dict[int, tuple[pa.Table, int, pa.Table]] = {}
        self.recovery_report: list[str] = []
        self.counters: dict[str, int] = {
            "points_written": 0,
            "write_requests": 0,
            "write_errors": 0,
            "queries": 0,
            "query_errors": 0,
            "flushes": 0,
            "compactions": 0,
            "ttl_dropped_files": 0,
            "wal_replayed_records": 0,
        }
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._background: threading.Thread | None = None
        self.wal: wal_mod.WriteAheadLog
        self._dir_lock: IO[str] | None = None
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------------------

    @classmethod
    def open(cls, data_dir: Path, config: EngineConfig | None = None) -> Engine:
        """Open (or create) the database in `data_dir`: check files, replay the WAL, start background work."""
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        dir_lock = _lock_data_dir(data_dir)
        try:
            engine = cls(data_dir, config or EngineConfig())
            engine._dir_lock = dir_lock
            engine._recover()
        except BaseException:
            dir_lock.close()
            raise
        if engine.config.background:
            engine._background = threading.Thread(target=engine._run_background, name="db-background", daemon=True)
            engine._background.start()
        return engine

    def _recover(self) -> None:
        kept = []
        for data_file in self.manifest.files:
            problem = check_readable(self.data_dir / data_file.path)
            if problem is None:
                kept.append(data_file)
            else:
                message = f"dropped unreadable Parquet file {data_file.path} ({data_file.rows} rows): {problem}"
                log.error(message)
                self.recovery_report.append(message)
        if len(kept) != len(self.manifest.files):
            self.manifest.files = kept
            self.manifest.save()
        listed = {self.data_dir / f.path for f in self.manifest.files}
        for path in (self.data_dir / "data").rglob("*") if (self.data_dir / "data").exists() else []:
            if path.is_file() and path not in listed:
                log.info("removing %s: not in the manifest (left by an interrupted flush or compaction)", path)
                path.unlink()
        wal_dir = self.data_dir / "wal"
        wal_dir.mkdir(exist_ok=True)
        before = len(self.recovery_report)
        replayed = 0
        for record in wal_mod.replay(wal_dir, self.manifest.wal_checkpoint):
            try:
                self._replay(record.payload)
                replayed += 1
            except DbError as exc:
                message = f"skipped WAL record in segment {record.segment}: {exc.message}"
                log.warning(message)
                self.recovery_report.append(message)
        self.counters["wal_replayed_records"] = replayed
        segments = wal_mod.list_segments(wal_dir)
        next_segment = max([self.manifest.wal_checkpoint - 1, *segments]) + 1
        self.wal = wal_mod.WriteAheadLog(wal_dir, next_segment, self.config.fsync, self.config.fsync_interval_s)
        if replayed or len(self.recovery_report) > before:
            log.info("replayed %d WAL records (%d rows in memory)", replayed, self.memtable.rows)

    def close(self) -> None:
        """Flush the memtable to Parquet and close the WAL; the engine is unusable afterwards. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        if self._background is not None:
            self._background.join()
        with self._maintenance, self._lock:  # (that lock order everywhere) later writes are refused, not half-done
            self._closed = True
            self.flush()
            self.wal.close()
        self._delete_obsolete()
        if self._dir_lock is not None:
            self._dir_lock.close()

    # --- writes ------------------------------------------------------------------------------------------

    def write_lines(self, tenant: str, database: str, body: bytes, precision: str = "ns") -> int:
        """Store a line-protocol body whole or not at all; returns the number of points."""
        try:
            try:
                precision_factor(precision)
            except ValueError as exc:
                raise errors.invalid_param(str(exc)) from None
            now_ns = time.time_ns()
            try:
                parsed = parse(body, precision, now_ns=now_ns)
            except LineProtocolError as exc:
                raise _line_error(exc) from None
            if parsed.num_points == 0:
                return 0
            record = (
                bytes([_REC_LINES]) + _encode_names(tenant, database) + struct.pack("<q", now_ns)
                + _precision_tag(precision), bytes(body),
            )  # fmt: skip
            with self._lock:
                db = self.catalog.database(tenant, database)
                seq = self._ingest(tenant, db, _chunks_from_lines(parsed, db.options.time_unit), record)
            self.wal.wait_durable(seq, force=db.options.wal_sync)
            self._after_write(parsed.num_points)
            return parsed.num_points
        except DbError:
            self.counters["write_errors"] += 1
            raise

    def write_table(self, tenant: str, database: str, table: str, data: pa.Table) -> int:
        """Store rows given as Arrow columns named as the table's (INSERT ... VALUES/SELECT)."""
        with self._lock:
            db = self.catalog.database(tenant, database)
            chunk = _chunk_from_table(db.tables[table], data)
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, chunk.data.schema) as writer:
                writer.write_table(chunk.data)
            record = (bytes([_REC_TABLE]) + _encode_names(tenant, database, table), sink.getvalue().to_pybytes())
            seq = self._ingest(tenant, db, [chunk], record)
        self.wal.wait_durable(seq, force=db.options.wal_sync)
        self._after_write(data.num_rows)
        return data.num_rows

    def _ingest(self, tenant: str, db: Database, chunks: list[Chunk], record: tuple[bytes, ...] | None) -> int:
        """Check `chunks` against the schemas, then log and buffer them. Caller holds the lock."""
        if self._closed:
            raise errors.internal("the database is shutting down")
        changes = _schema_changes(db, chunks)
        if db.options.ttl_ns is not None:
            cutoff = (time.time_ns() - db.options.ttl_ns) // _UNIT_NS[db.options.time_unit]
            if min(c.min_time for c in chunks) < cutoff:
                raise errors.not_supported("create expired bucket")
        if changes:
            for table_name, columns in changes.items():
                table = db.tables.setdefault(
                    table_name, Table(table_name, [Column("time", "TIME", _TIME_SQL_TYPE[db.options.time_unit])])
                )
                table.columns.extend(columns)
            if record is not None:
                self.catalog.save()
        seq = self.wal.append(*record) if record is not None else 0
        for chunk in chunks:
            self.memtable.insert((tenant, db.name, chunk.table), chunk.data, chunk.min_time, chunk.max_time)
        if self._memtable_since is None:
            self._memtable_since = time.monotonic()
        return seq

    def _after_write(self, points: int) -> None:
        self.counters["points_written"] += points
        self.counters["write_requests"] += 1
        if self.memtable.nbytes >= self.config.memtable_bytes:
            if self.config.background:
                self._wake.set()
                with self._lock:  # back-pressure: never hold more than twice the limit in memory
                    while self.memtable.nbytes >= 2 * self.config.memtable_bytes and not self._stop.is_set():
                        self._flushed.wait(1.0)
            else:
                self.flush()

    def _replay(self, payload: bytes) -> None:
        kind = payload[0]
        if kind == _REC_LINES:
            (tenant, database), offset = _decode_names(payload, 1, 2)
            (now_ns,) = struct.unpack_from("<q", payload, offset)
            offset += 8
            plen = payload[offset]
            precision = payload[offset + 1 : offset + 1 + plen].decode()
            body = payload[offset + 1 + plen :]
            db = self.catalog.database(tenant, database)
            parsed = parse(body, precision, now_ns=now_ns)
            self._ingest(tenant, db, _chunks_from_lines(parsed, db.options.time_unit), None)
        elif kind == _REC_TABLE:
            (tenant, database, table), offset = _decode_names(payload, 1, 3)
            data = pa.ipc.open_stream(payload[offset:]).read_all()
            db = self.catalog.database(tenant, database)
            if table not in db.tables:
                raise errors.table_not_found(tenant, database, table)
            self._ingest(tenant, db, [_chunk_from_table(db.tables[table], data)], None)

    # --- flush, compaction, TTL --------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every memtable row to Parquet now and checkpoint the WAL.

        Memtables frozen by an earlier flush that failed (disk full, ...) are retried first, oldest first: the
        WAL checkpoint only moves past rows that are in files.
        """
        with self._maintenance:
            with self._lock:
                if self.memtable.rows:
                    self._frozen.append(self.memtable)
                    self.memtable = Memtable()
                    self._memtable_since = None
                    self.wal.rotate(self.wal.segment + 1)
                pending = list(self._frozen)
                checkpoint = self.wal.segment
            if not pending:
                return
            started = time.monotonic()
            new_files: list[DataFile] = []
            for frozen in pending:
                for key, buffer in sorted(frozen.tables.items()):
                    new_files.extend(self._flush_table(key, buffer))
            with self._lock:
                self.manifest.files.extend(new_files)
                self.manifest.wal_checkpoint = checkpoint
                self.manifest.save()
                for frozen in pending:
                    self._frozen.remove(frozen)
                self._flushed.notify_all()
            self.wal.delete_before(checkpoint)
            self.counters["flushes"] += 1
            rows = sum(m.rows for m in pending)
            log.info("flushed %d rows into %d files in %.2fs", rows, len(new_files), time.monotonic() - started)

    def _table_layout(self, tenant: str, database: str, table_name: str) -> tuple[pa.Schema, list[str], int] | None:
        """A table's Arrow schema, tag columns and vnode duration (in its database's time unit) as the catalog has
        them now; None if the table or its database has been dropped."""
        with self._lock:
            db = self.catalog.tenants.get(tenant, {}).get(database)
            table = db.tables.get(table_name) if db else None
            if db is None or table is None:
                return None
            vnode = max(1, db.options.vnode_duration_ns // _UNIT_NS[db.options.time_unit])
            return table.arrow_schema(db.options.time_unit), table.tags, vnode

    def _flush_table(self, key: tuple[str, str, str], buffer: TableBuffer) -> list[DataFile]:
        tenant, database, table_name = key
        layout = self._table_layout(tenant, database, table_name)
        if layout is None:
            return []
        schema, tags, vnode = layout
        data = dedup(combine(buffer.chunks, schema), tags)
        return self._write_windows(tenant, database, table_name, data, tags, vnode, level=0)

    def _write_windows(
        self, tenant: str, database: str, table: str, data: pa.Table, tags: list[str], vnode: int, level: int,
        seq: int | None = None,
    ) -> list[DataFile]:  # fmt: skip
        """Write `data` (deduplicated, sorted) as one file per time window; the manifest is not touched."""
        times = data.column("time").cast(pa.int64())
        windows = pc.multiply(pc.divide(pc.subtract(times, pc.if_else(pc.less(times, 0), vnode - 1, 0)), vnode),
                              vnode)  # fmt: skip
        result = []
        distinct = pc.unique(windows).to_pylist()
        for window in distinct:
            part = data if len(distinct) == 1 else data.filter(pc.equal(windows, window))
            part_times = part.column("time").cast(pa.int64())
            with self._lock:
                file_id = self.manifest.allocate_id()
            folder = "/".join(_path_component(n) for n in (tenant, database, table))
            relative = f"data/{folder}/{window}/{file_id:012d}.parquet"
            size, scales = write_parquet(self.data_dir, relative, part, tags)
            result.append(DataFile(
                id=file_id, seq=seq if seq is not None else file_id, tenant=tenant, database=database, table=table,
                window=window, path=relative, min_time=pc.min(part_times).as_py(), max_time=pc.max(part_times).as_py(),
                rows=part.num_rows, bytes=size, level=level, scales=scales,
            ))  # fmt: skip
        return result

    def compact(self, force: bool = False) -> int:
        """Merge files within each time window: files that overlap in time always (so queries need not merge
        them), and runs of small neighbouring files once a window has `compact_min_files` of them (`force`: 2).
        Returns the number of merges."""
        compacted = 0
        with self._maintenance:
            with self._lock:
                groups: dict[tuple[str, str, str, int], list[DataFile]] = {}
                for data_file in self.manifest.files:
                    key = (data_file.tenant, data_file.database, data_file.table, data_file.window)
                    groups.setdefault(key, []).append(data_file)
            for (tenant, database, table_name, window), window_files in sorted(groups.items()):
                runs = _compaction_runs(
                    window_files, 2 if force else self.config.compact_min_files, self.config.compact_max_rows
                )
                for files in runs:
                    compacted += self._merge(tenant, database, table_name, window, files)
        self._delete_obsolete()
        return compacted

    def _merge(self, tenant: str, database: str, table_name: str, window: int, files: list[DataFile]) -> int:
        """Replace `files` (one window) by their deduplicated rows in one file; 1 if done."""
        layout = self._table_layout(tenant, database, table_name)
        if layout is None:
            return 0
        schema, tags, vnode = layout
        files = sorted(files, key=lambda f: f.seq)
        data = dedup(self._read_files(files, schema), tags)
        outputs = self._write_windows(
            tenant, database, table_name, data, tags, vnode, level=1, seq=max(f.seq for f in files)
        )
        with self._lock:
            self._replace_files(files, outputs)
        self.counters["compactions"] += 1
        log.info(
            "compacted %d files of %s.%s window %d into %d (%d rows)",
            len(files), database, table_name, window, len(outputs), data.num_rows,
        )  # fmt: skip
        return 1

    def _read_files(self, files: list[DataFile], schema: pa.Schema) -> pa.Table:
        """The rows of `files`, in file order (older first, as dedup expects), as `schema`."""
        if not files:
            return schema.empty_table()
        tables = [conform(decode_decimals(pq.read_table(self.data_dir / f.path), f.scales), schema) for f in files]
        return pa.concat_tables(tables)

    def _replace_files(self, old: list[DataFile], new: list[DataFile]) -> None:
        """Swap files in the manifest atomically; the old ones are deleted once no query reads them."""
        gone = {f.id for f in old}
        self.manifest.files = [f for f in self.manifest.files if f.id not in gone] + new
        self.manifest.save()
        self._obsolete.extend(self.data_dir / f.path for f in old)

    def enforce_ttl(self) -> int:
        """Drop whole windows that lie entirely before now − TTL; returns the number of files dropped."""
        dropped: list[DataFile] = []
        with self._maintenance, self._lock:
            now = time.time_ns()
            for data_file in self.manifest.files:
                db = self.catalog.tenants.get(data_file.tenant, {}).get(data_file.database)
                if db is None or db.options.ttl_ns is None:
                    continue
                unit = _UNIT_NS[db.options.time_unit]
                window_end = (data_file.window + db.options.vnode_duration_ns // unit) * unit
                if window_end <= now - db.options.ttl_ns:
                    dropped.append(data_file)
            if dropped:
                self._replace_files(dropped, [])
                self.counters["ttl_dropped_files"] += len(dropped)
                log.info("TTL: dropped %d expired files", len(dropped))
        self._delete_obsolete()
        return len(dropped)

    def _delete_obsolete(self) -> None:
        with self._lock:
            if self._active_readers:
                return
            paths, self._obsolete = self._obsolete, []
        for path in paths:
            path.unlink(missing_ok=True)

    def _run_background(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.config.background_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                since = self._memtable_since
                aged = since is not None and time.monotonic() - since >= self.config.flush_age_s
                if self.memtable.nbytes >= self.config.memtable_bytes or aged:
                    self.flush()
                self.compact()
                self.enforce_ttl()
            except Exception:  # keep the server up; the next round retries
                log.exception("background flush/compaction failed")

    # --- catalog operations (used by the SQL layer) ------------------------------------------------------

    def database_exists(self, tenant: str, database: str) -> bool:
        with self._lock:
            return self.catalog.has_database(tenant, database)

    def create_database(self, tenant: str, database: Database, if_not_exists: bool = False) -> None:
        with self._lock:
            databases = self.catalog.tenants.get(tenant)
            if databases is None:
                raise errors.tenant_not_found(tenant)
            if database.name in databases:
                if if_not_exists:
                    return
                raise errors.database_already_exists(database.name)
            databases[database.name] = database
            self.catalog.save()

    def drop_database(self, tenant: str, name: str, if_exists: bool = False) -> None:
        # Writes wait while the memtable is flushed (so no WAL record of this database remains to be replayed
        # into a later namesake) and the database is removed.
        with self._maintenance, self._lock:
            if not self.catalog.has_database(tenant, name):
                if if_exists:
                    return
                raise errors.database_not_found(name)
            self.flush()
            del self.catalog.tenants[tenant][name]
            self.catalog.save()
            self.memtable.drop(lambda key: key[0] == tenant and key[1] == name)
            self._replace_files([f for f in self.manifest.files if f.tenant == tenant and f.database == name], [])
        self._delete_obsolete()

    def update_database(self, tenant: str, name: str, change: Callable[[Database], None]) -> None:
        with self._lock:
            change(self.catalog.database(tenant, name))
            self.catalog.save()

    def create_table(self, tenant: str, database: str, table: Table, if_not_exists: bool = False) -> None:
        with self._lock:
            db = self.catalog.database(tenant, database)
            if table.name in db.tables:
                if if_not_exists:
                    return
                raise errors.table_already_exists(table.name)
            table.columns.insert(0, Column("time", "TIME", _TIME_SQL_TYPE[db.options.time_unit]))
            db.tables[table.name] = table
            self.catalog.save()

    def drop_table(self, tenant: str, database: str, name: str, if_exists: bool = False) -> None:
        with self._maintenance, self._lock:  # as in drop_database
            db = self.catalog.database(tenant, database)
            if name not in db.tables:
                if if_exists:
                    return
                raise errors.table_not_found(tenant, database, name)
            self.flush()
            del db.tables[name]
            self.catalog.save()
            self.memtable.drop(lambda key: key == (tenant, database, name))
            self._replace_files(
                [f for f in self.manifest.files if (f.tenant, f.database, f.table) == (tenant, database, name)], []
            )
        self._delete_obsolete()

    def alter_table(self, tenant: str, database: str, name: str, change: Callable[[Table], None]) -> None:
        with self._lock:
            db = self.catalog.database(tenant, database)
            if name not in db.tables:
                raise errors.table_not_found(tenant, database, name)
            change(db.tables[name])
            self.catalog.save()

    def rewrite_table(
        self, tenant: str, database: str, name: str, keep: Callable[[pa.Table], pa.Table], force: bool = False
    ) -> None:
        """Apply `keep` to the rows of every file of a table (DELETE filters them, UPDATE changes them; the result
        must be deduplicated and sorted; `force` rewrites files `keep` leaves unchanged too, so that they lose
        columns the table no longer has). Flushes first; the rewritten files
        replace the old ones in one manifest update, so a failure leaves the table as it was."""
        with self._maintenance:
            self.flush()
            snapshot = self.snapshot(tenant, database, name)
            try:
                replaced: list[DataFile] = []
                outputs: list[DataFile] = []
                for data_file in snapshot.files:
                    data = self._read_files([data_file], snapshot.schema)
                    kept = keep(data)
                    if not force and kept.num_rows == data.num_rows and _same_rows(kept, data):
                        continue
                    replaced.append(data_file)
                    if kept.num_rows:
                        outputs += self._write_windows(
                            tenant, database, name, kept, snapshot.tags, snapshot.vnode, data_file.level, data_file.seq
                        )
                if replaced:
                    with self._lock:
                        self._replace_files(replaced, outputs)
            finally:
                self.release(snapshot)
        self._delete_obsolete()

    # --- reads -------------------------------------------------------------------------------------------

    def snapshot(self, tenant: str, database: str, table_name: str) -> TableSnapshot:
        """A consistent view of one table; call `release` when done reading its files."""
        with self._lock:
            db = self.catalog.database(tenant, database)
            table = db.tables.get(table_name)
            if table is None:
                raise errors.table_not_found_in_plan(tenant, database, table_name)
            key = (tenant, database, table_name)
            buffers = [b for m in [*self._frozen, self.memtable] if (b := m.snapshot(key)) is not None]
            self._active_readers += 1
            vnode = max(1, db.options.vnode_duration_ns // _UNIT_NS[db.options.time_unit])
            return TableSnapshot(
                table.arrow_schema(db.options.time_unit), table.tags, vnode, self.manifest.table_files(*key), buffers
            )

    def release(self, snapshot: TableSnapshot) -> None:
        with self._lock:
            self._active_readers -= 1
        self._delete_obsolete()

    def register(self, ctx: SessionContext, name: str, snapshot: TableSnapshot, schema_name: str | None = None) -> None:
        """Make table `name` (in DataFusion schema `schema_name`, default the default one) in `ctx` the rows of a
        snapshot, with no duplicate (series, time).

        Files whose time range overlaps no other source are scanned in place (one dataset per way DOUBLE columns
        are stored, decoded in a projection); overlapping files and the memtable are merged in memory first.
        """
        schema = snapshot.schema
        sources: list[tuple[int, int, DataFile | None]] = [(f.min_time, f.max_time, f) for f in snapshot.files]
        if snapshot.buffers:
            sources.append((min(b.min_time for b in snapshot.buffers), max(b.max_time for b in snapshot.buffers), None))
        clean: dict[tuple[tuple[str, int], ...], list[DataFile]] = {}
        merged: list[pa.Table] = []
        for cluster in _overlap_clusters(sources):
            files = sorted((f for _, _, f in cluster if f is not None), key=lambda f: f.seq)
            has_memory = any(f is None for _, _, f in cluster)
            if len(files) == 1 and not has_memory:
                signature = tuple(sorted((k, v) for k, v in files[0].scales.items() if k in schema.names))
                clean.setdefault(signature, []).append(files[0])
                continue
            parts = [self._read_files(files, schema)] if files else []
            if has_memory:
                parts.append(self._memory_table(snapshot))
            merged.append(dedup(pa.concat_tables(parts), snapshot.tags) if len(files) + has_memory > 1 else parts[0])
        selects: list[tuple[str, ds.Dataset, str]] = []
        hidden_prefix = f"__tidepool_{schema_name or ''}_{name}_"
        time_type = schema.field("time").type
        for number, (signature, clean_files) in enumerate(sorted(clean.items())):
            scales = dict(signature)
            physical = pa.schema([pa.field(f.name, pa.int64()) if f.name in scales else f for f in schema])
            dataset = ds.FileSystemDataset.from_paths(
                [str(self.data_dir / f.path) for f in clean_files],
                schema=physical,
                format=ds.ParquetFileFormat(),
                filesystem=pa.fs.LocalFileSystem(),
                # Each file's time range, so that a time filter skips whole files without opening them.
                partitions=[
                    (ds.field("time") >= pa.scalar(f.min_time, time_type))
                    & (ds.field("time") <= pa.scalar(f.max_time, time_type))
                    for f in clean_files
                ],
            )
            projection = ", ".join(
                f"CAST({_ident(f.name)} AS DOUBLE) / {float(10 ** scales[f.name])} AS {_ident(f.name)}"
                if f.name in scales else _ident(f.name)
                for f in schema
            )  # fmt: skip
            selects.append((f"{hidden_prefix}{number}", dataset, projection if scales else "*"))
        if merged:
            selects.append((f"{hidden_prefix}mem", ds.dataset(pa.concat_tables(merged), schema=schema), "*"))
        # Names are quoted so that DataFusion does not lower-case them (a measurement may be `CPU`).
        qualified = _ident(name) if schema_name is None else f"{_ident(schema_name)}.{_ident(name)}"
        if not selects:
            ctx.register_dataset(qualified, ds.dataset(schema.empty_table()))
        elif len(selects) == 1 and selects[0][2] == "*":
            ctx.register_dataset(qualified, selects[0][1])
        else:
            for hidden, dataset, _ in selects:
                ctx.register_dataset(_ident(hidden), dataset)
            union = " UNION ALL ".join(
                f"SELECT {projection} FROM {_ident(hidden)}" for hidden, _, projection in selects
            )
            ctx.register_view(qualified, ctx.sql(union))

    def _memory_table(self, snapshot: TableSnapshot) -> pa.Table:
        """The deduplicated memtable rows of a snapshot.

        Cached per buffer; when writes only add later times (the usual case), only the new chunks are merged and
        appended, since they cannot collide with the rows already merged.
        """
        tables = []
        for buffer in snapshot.buffers:
            first = buffer.chunks[0]
            cached = self._dedup_cache.get(id(first))
            usable = cached is not None and cached[0] is first and cached[2].schema.equals(snapshot.schema)
            if usable and cached is not None and cached[1] == len(buffer.chunks):
                tables.append(cached[2])
                continue
            done = cached[1] if usable and cached is not None else 0
            new_chunks, new_ranges = buffer.chunks[done:], buffer.ranges[done:]
            merged_max = max((r[1] for r in buffer.ranges[:done]), default=None)
            if done and merged_max is not None and min(r[0] for r in new_ranges) > merged_max:
                assert cached is not None
                added = dedup(combine(new_chunks, snapshot.schema), snapshot.tags)
                table = pa.concat_tables([cached[2], added])
            else:
                table = dedup(combine(buffer.chunks, snapshot.schema), snapshot.tags)
            self._dedup_cache[id(first)] = (first, len(buffer.chunks), table)
            tables.append(table)
        if len(self._dedup_cache) > 64:
            self._dedup_cache.clear()
        if len(tables) == 1:
            return tables[0]
        ranges = [(b.min_time, b.max_time) for b in snapshot.buffers]
        ordered = sorted(ranges)
        if all(later[0] > earlier[1] for earlier, later in itertools.pairwise(ordered)):
            return pa.concat_tables(tables)  # frozen and active memtables hold disjoint times
        return dedup(pa.concat_tables(tables), snapshot.tags)

    def execute(self, tenant: str, database: str, sql: str) -> QueryResult:
        """Run one SQL statement (CnosDB dialect) against `database`."""
        from tidepool.db.query.statements import execute

        self.counters["queries"] += 1
        try:
            return execute(self, tenant, database, sql)
        except DbError:
            self.counters["query_errors"] += 1
            raise

    def stats(self) -> dict[str, int | float]:
        with self._lock:
            files = list(self.manifest.files)
            result: dict[str, int | float] = dict(self.counters)
            result.update(
                wal_bytes=sum(p.stat().st_size for p in (self.data_dir / "wal").glob("*.wal")),
                parquet_files=len(files),
                parquet_bytes=sum(f.bytes for f in files),
                parquet_rows=sum(f.rows for f in files),
                memtable_rows=self.memtable.rows + sum(m.rows for m in self._frozen),
                memtable_bytes=self.memtable.nbytes + sum(m.nbytes for m in self._frozen),
                databases=sum(len(d) for d in self.catalog.tenants.values()),
            )
            return result


# --- helpers -------------------------------------------------------------------------------------------------


def _lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold an exclusive lock on `data_dir` for this process's lifetime (released by the OS if it dies)."""
    handle = open(data_dir / "LOCK", "a+")  # noqa: SIM115 - kept open while the engine runs
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise OSError(errno.EBUSY, f"{data_dir} is in use by another tidepool db process") from None
    return handle


def _path_component(name: str) -> str:
    """A name as one safe directory name: no `/`, no `..`, not too long (names come from clients)."""
    encoded = urllib.parse.quote(name, safe="").replace(".", "%2E")
    if len(encoded) > 120:
        encoded = encoded[:80] + "~" + hashlib.sha256(name.encode()).hexdigest()[:32]
    return encoded


def _same_rows(a: pa.Table, b: pa.Table) -> bool:
    try:
        return a.cast(b.schema).equals(b)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _encode_names(*names: str) -> bytes:
    out = b""
    for name in names:
        raw = name.encode()
        out += struct.pack("<H", len(raw)) + raw
    return out


def _decode_names(payload: bytes, offset: int, count: int) -> tuple[list[str], int]:
    names = []
    for _ in range(count):
        (length,) = struct.unpack_from("<H", payload, offset)
        names.append(payload[offset + 2 : offset + 2 + length].decode())
        offset += 2 + length
    return names, offset


def _precision_tag(precision: str) -> bytes:
    raw = precision.encode()
    return bytes([len(raw)]) + raw


def _to_unit(times: pa.Array, unit: str) -> pa.Array:
    """int64 nanoseconds → the database's unit (floor division), as int64."""
    factor = _UNIT_NS[unit]
    if factor == 1:
        return times
    return pc.divide(pc.subtract(times, pc.if_else(pc.less(times, 0), factor - 1, 0)), factor)


def _chunks_from_lines(parsed: ParsedBatch, unit: str) -> list[Chunk]:
    chunks = []
    for name, batch in parsed.measurements.items():
        times = _to_unit(batch.time, unit)
        columns: dict[str, pa.Array] = {"time": times.cast(pa.timestamp(unit))}
        for key, values in batch.tags.items():
            columns[key] = values
        field_types = {}
        for key, (ftype, values) in batch.fields.items():
            columns[key] = values
            field_types[key] = _SQL_TYPE_OF[ftype]
        chunks.append(Chunk(name, pa.table(columns), list(batch.tags), field_types,
                            pc.min(times).as_py(), pc.max(times).as_py()))  # fmt: skip
    return chunks


def _chunk_from_table(table: Table, data: pa.Table) -> Chunk:
    times = data.column("time").cast(pa.int64())
    tags = [n for n in data.column_names if n in table.tags]
    fields = {c.name: c.sql_type for c in table.fields if c.name in data.column_names}
    return Chunk(table.name, data, tags, fields, pc.min(times).as_py(), pc.max(times).as_py())


_MIXED_TYPES = re.compile(r"field '(.+)' is (\w+) here but (\w+) in an earlier line")
_LP_TYPE_NAMES = {"Utf8": "STRING", "Boolean": "BOOL"}


def _line_error(exc: LineProtocolError) -> DbError:
    """A bad body → CnosDB's error. A field whose type differs between lines of one body is CnosDB's type error
    (CnosDB checks each line against the schema the earlier lines created); anything else is a parse error."""
    first = exc.errors[0]
    if first.message == "timestamp overflow":  # CnosDB says just this, without a position
        return errors.line_protocol(first.message)
    mixed = _MIXED_TYPES.fullmatch(first.message)
    if mixed:
        column, found, expected = mixed.groups()
        return errors.type_conflict(column, _LP_TYPE_NAMES.get(found, found), _LP_TYPE_NAMES.get(expected, expected))
    return errors.line_protocol("; ".join(str(e) for e in exc.errors[:10]))


def _type_name(column: Column) -> str:
    return column.kind if column.kind in ("TAG", "TIME") else errors.TYPE_NAMES[column.sql_type]


def _schema_changes(db: Database, chunks: list[Chunk]) -> dict[str, list[Column]]:
    """New columns per table that `chunks` need; raises on a type or tag/field conflict (nothing applied)."""
    changes: dict[str, list[Column]] = {}
    for chunk in chunks:
        table = db.tables.get(chunk.table)
        pending = changes.setdefault(chunk.table, [])
        known = {c.name: c for c in (table.columns if table else [])} | {c.name: c for c in pending}
        known.setdefault("time", Column("time", "TIME", "TIMESTAMP"))  # a new table's time column, reserved
        for tag in chunk.tags:
            column = known.get(tag)
            if column is None:
                pending.append(Column(tag, "TAG", "STRING"))
                known[tag] = pending[-1]
            elif column.kind != "TAG":
                raise errors.type_conflict(tag, "TAG", _type_name(column))
        for name, sql_type in chunk.fields.items():
            column = known.get(name)
            if column is None:
                pending.append(Column(name, "FIELD", sql_type))
                known[name] = pending[-1]
            elif column.kind != "FIELD" or column.sql_type != sql_type:
                raise errors.type_conflict(name, errors.TYPE_NAMES[sql_type], _type_name(column))
        if not pending:
            del changes[chunk.table]
    return changes


def _compaction_runs(files: list[DataFile], min_files: int, max_rows: int) -> list[list[DataFile]]:
    """Which files of one window to merge: every group that overlaps in time, then — if at least `min_files`
    small files remain — runs of time-neighbouring small files of at most `max_rows` rows. Runs are contiguous
    in time, so a merged file never overlaps a file left out."""
    clusters = _overlap_clusters([(f.min_time, f.max_time, f) for f in files])
    runs = [[f for _, _, f in c if f is not None] for c in clusters if len(c) > 1]
    singles = [f for c in clusters if len(c) == 1 for _, _, f in c if f is not None]
    small = [f for f in singles if f.rows < max_rows // 2]
    if len(small) < min_files:
        return runs
    run: list[DataFile] = []
    rows = 0
    for data_file in singles:  # in time order
        if data_file.rows >= max_rows // 2 or (run and rows + data_file.rows > max_rows):
            if len(run) > 1:
                runs.append(run)
            run, rows = [], 0
            if data_file.rows >= max_rows // 2:
                continue
        run.append(data_file)
        rows += data_file.rows
    if len(run) > 1:
        runs.append(run)
    return runs


def _overlap_clusters(sources: list[tuple[int, int, DataFile | None]]) -> list[list[tuple[int, int, DataFile | None]]]:
    """Group sources whose [min, max] time ranges overlap, transitively."""
    clusters: list[list[tuple[int, int, DataFile | None]]] = []
    end = None
    for source in sorted(sources, key=lambda s: s[0]):
        if end is not None and source[0] <= end:
            clusters[-1].append(source)
            end = max(end, source[1])
        else:
            clusters.append([source])
            end = source[1]
    return clusters
