"""The engine's write path and storage, driven directly: what is written is what queries return, wherever it lives."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from tidepool.db.engine import Engine, EngineConfig
from tidepool.db.errors import DbError

T0 = 1_642_176_000_000_000_000  # 2022-01-14T16:00:00Z


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine.open(tmp_path / "db", EngineConfig(background=False))
    yield eng
    eng.close()


def rows(engine: Engine, sql: str, database: str = "public") -> list[dict[str, object]]:
    table = engine.execute("cnosdb", database, sql).to_table()
    return [
        {k: (v.value if hasattr(v, "value") else v) for k, v in row.items()}
        for row in table.cast(_ints_for_time(table.schema)).to_pylist()
    ]


def _ints_for_time(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, pa.int64()) if pa.types.is_timestamp(f.type) else f for f in schema])


def test_written_points_come_back_from_memtable_flushed_and_compacted_files(engine: Engine) -> None:
    expected = []
    for step in range(4):
        body = "\n".join(f"cpu,host=h{h} usage={step * 10 + h}.5,n={h}i {T0 + step * 10**9}" for h in range(3))
        assert engine.write_lines("cnosdb", "public", body.encode()) == 3
        expected += [
            {"time": T0 + step * 10**9, "host": f"h{h}", "usage": step * 10 + h + 0.5, "n": h} for h in range(3)
        ]
        if step < 3:
            engine.flush()  # three files; the fourth step stays in the memtable
    query = "SELECT * FROM cpu ORDER BY host, time"
    by_key = sorted(expected, key=lambda r: (r["host"], r["time"]))
    assert rows(engine, query) == by_key
    assert engine.stats()["parquet_files"] == 3
    assert engine.compact(force=True) == 1
    assert engine.stats()["parquet_files"] == 1
    assert rows(engine, query) == by_key
    engine.flush()
    engine.compact(force=True)
    assert rows(engine, query) == by_key
    assert rows(engine, "SELECT count(*) AS n FROM cpu") == [{"n": 12}]


def test_same_series_and_time_merge_field_by_field_across_memtable_and_files(engine: Engine) -> None:
    engine.write_lines("cnosdb", "public", f"m0,ta=ta f0=1,f1=true {T0}".encode())
    engine.flush()
    engine.write_lines("cnosdb", "public", f"m0,ta=ta f0=2 {T0}".encode())
    expected = [{"time": T0, "ta": "ta", "f0": 2.0, "f1": True}]
    assert rows(engine, "SELECT * FROM m0") == expected  # file + memtable
    engine.flush()
    assert rows(engine, "SELECT * FROM m0") == expected  # two overlapping files
    engine.compact(force=True)
    assert rows(engine, "SELECT * FROM m0") == expected  # one compacted file
    engine.write_lines("cnosdb", "public", f'm0,ta=ta f2="x" {T0}\nm0,ta=ta f0=3 {T0}'.encode())
    assert rows(engine, "SELECT * FROM m0") == [{"time": T0, "ta": "ta", "f0": 3.0, "f1": True, "f2": "x"}]
    assert rows(engine, "SELECT count(*) AS n FROM m0") == [{"n": 1}]


def test_write_with_conflicting_field_type_is_rejected_whole(engine: Engine) -> None:
    engine.write_lines("cnosdb", "public", f"air,station=a temperature=1.5 {T0}".encode())
    body = f"air,station=b temperature=2.5 {T0}\nair,station=c temperature=3i {T0}\nnew_table v=1 {T0}"
    with pytest.raises(DbError) as info:
        engine.write_lines("cnosdb", "public", body.encode())
    assert info.value.code == "020004"
    assert info.value.message == "Column 'temperature' type error, found I64 expected F64"
    assert info.value.http_status == 422
    assert rows(engine, "SELECT station FROM air") == [{"station": "a"}]
    assert rows(engine, "SHOW TABLES") == [{"table_name": "air"}]


def test_tag_written_as_field_is_a_type_conflict(engine: Engine) -> None:
    engine.write_lines("cnosdb", "public", f"air,station=a temperature=1.5 {T0}".encode())
    with pytest.raises(DbError) as info:
        engine.write_lines("cnosdb", "public", f"air station=1.5 {T0}".encode())
    assert info.value.message == "Column 'station' type error, found F64 expected TAG"


def test_time_is_neither_a_tag_nor_a_field(engine: Engine) -> None:
    for line in (f"m,time=x v=1 {T0}", f"m time=1 {T0}"):
        with pytest.raises(DbError) as info:
            engine.write_lines("cnosdb", "public", line.encode())
        assert info.value.code == "020004" and "expected TIME" in info.value.message
    assert rows(engine, "SHOW TABLES") == []


def test_write_to_unknown_database_is_rejected_and_creates_nothing(engine: Engine) -> None:
    with pytest.raises(DbError) as info:
        engine.write_lines("cnosdb", "nosuch", f"air v=1 {T0}".encode())
    assert (info.value.code, info.value.message) == ("030017", 'Database not found: "nosuch"')
    assert not engine.database_exists("cnosdb", "nosuch")


def test_bad_line_rejects_the_whole_body(engine: Engine) -> None:
    body = f"air,station=a v=1 {T0}\nair,station=b {T0}\n"
    with pytest.raises(DbError) as info:
        engine.write_lines("cnosdb", "public", body.encode())
    assert info.value.code == "040004"
    assert info.value.message.startswith("Error parsing message: line 2")
    assert rows(engine, "SHOW TABLES") == []
    assert engine.stats()["write_errors"] == 1


def test_database_precision_converts_timestamps(engine: Engine) -> None:
    engine.execute("cnosdb", "public", "CREATE DATABASE msdb WITH PRECISION 'ms'")
    engine.write_lines("cnosdb", "msdb", b"m v=1 1700000000123", precision="ms")
    table = engine.execute("cnosdb", "msdb", "SELECT time FROM m").to_table()
    assert table.schema.field("time").type == pa.timestamp("ms")
    assert table.column("time").cast(pa.int64()).to_pylist() == [1700000000123]


def test_write_older_than_ttl_is_rejected(engine: Engine) -> None:
    engine.execute("cnosdb", "public", "CREATE DATABASE short WITH TTL '1d'")
    with pytest.raises(DbError) as info:
        engine.write_lines("cnosdb", "short", f"m v=1 {T0}".encode())
    assert (info.value.code, info.value.message) == ("030034", "Operation not support: create expired bucket")


def test_ttl_drops_expired_windows(engine: Engine) -> None:
    day = 86400 * 10**9
    now = time.time_ns()
    engine.execute("cnosdb", "public", "CREATE DATABASE short WITH VNODE_DURATION '1d'")
    engine.write_lines("cnosdb", "short", f"m v=1 {now - 40 * day}\nm v=2 {now - 10 * day}".encode())
    engine.flush()
    assert engine.stats()["parquet_files"] == 2  # two one-day windows
    engine.execute("cnosdb", "public", "ALTER DATABASE short SET TTL '100d'")
    assert engine.enforce_ttl() == 0
    assert rows(engine, "SELECT count(*) AS n FROM m", "short") == [{"n": 2}]
    engine.execute("cnosdb", "public", "ALTER DATABASE short SET TTL '30d'")
    assert engine.enforce_ttl() == 1
    assert rows(engine, "SELECT v FROM m", "short") == [{"v": 2.0}]


def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    eng = Engine.open(tmp_path / "db", EngineConfig(background=False))
    eng.write_lines("cnosdb", "public", f"cpu,host=a v=1 {T0}".encode())
    eng.flush()
    eng.write_lines("cnosdb", "public", f"cpu,host=b v=2 {T0}".encode())
    eng.close()
    eng = Engine.open(tmp_path / "db", EngineConfig(background=False))
    try:
        assert rows(eng, "SELECT host, v FROM cpu ORDER BY host") == [{"host": "a", "v": 1.0}, {"host": "b", "v": 2.0}]
        assert eng.stats()["wal_replayed_records"] == 0  # close flushed everything
    finally:
        eng.close()


def test_memtable_size_limit_triggers_flush(tmp_path: Path) -> None:
    eng = Engine.open(tmp_path / "db", EngineConfig(background=False, memtable_bytes=64 * 1024))
    try:
        for batch in range(20):
            body = "\n".join(f"cpu,host=h{i % 7} v={i} {T0 + (batch * 500 + i) * 10**9}" for i in range(500))
            eng.write_lines("cnosdb", "public", body.encode())
        stats = eng.stats()
        assert stats["flushes"] >= 1
        assert stats["memtable_bytes"] < 2 * 64 * 1024
        assert rows(eng, "SELECT count(*) AS n FROM cpu") == [{"n": 10_000}]
    finally:
        eng.close()


def test_concurrent_writes_and_queries_during_background_flush_and_compaction(tmp_path: Path) -> None:
    config = EngineConfig(memtable_bytes=32 * 1024, background_interval_s=0.02, compact_min_files=2)
    eng = Engine.open(tmp_path / "db", config)
    eng.write_lines("cnosdb", "public", f"cpu,w=init v=0 {T0}".encode())  # the table exists for the reader
    failures: list[BaseException] = []
    writers_done = threading.Event()

    def writer(n: int) -> None:
        try:
            for batch in range(40):
                body = "\n".join(f"cpu,w=w{n} v={batch * 50 + i} {T0 + (batch * 50 + i) * 10**9}" for i in range(50))
                eng.write_lines("cnosdb", "public", body.encode())
        except BaseException as exc:
            failures.append(exc)

    def reader() -> None:
        try:
            while not writers_done.is_set():
                counts = rows(eng, "SELECT w, count(*) AS n, count(DISTINCT time) AS d FROM cpu GROUP BY w")
                assert all(r["n"] == r["d"] for r in counts)  # never a duplicate (series, time)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    query_thread = threading.Thread(target=reader)
    query_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    writers_done.set()
    query_thread.join(timeout=120)
    try:
        assert failures == []
        deadline = time.monotonic() + 10
        while eng.stats()["compactions"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # the background thread merges the flushed files
        assert eng.stats()["flushes"] >= 2 and eng.stats()["compactions"] >= 1
        assert rows(eng, "SELECT w, count(*) AS n FROM cpu WHERE w <> 'init' GROUP BY w ORDER BY w") == [
            {"w": f"w{n}", "n": 2000} for n in range(3)
        ]
    finally:
        eng.close()


def test_compaction_merges_overlapping_files_and_bounded_runs_of_small_ones(tmp_path: Path) -> None:
    eng = Engine.open(tmp_path / "db", EngineConfig(background=False, compact_min_files=3, compact_max_rows=250))
    try:
        for step in range(6):  # six flushed files of 100 rows each, disjoint in time
            body = "\n".join(f"cpu,host=a v={step * 100 + i} {T0 + (step * 100 + i) * 10**9}" for i in range(100))
            eng.write_lines("cnosdb", "public", body.encode())
            eng.flush()
        assert eng.compact() == 3  # runs of two files: no merge may exceed 250 rows
        assert sorted(f.rows for f in eng.manifest.files) == [200, 200, 200]
        eng.write_lines("cnosdb", "public", f"cpu,host=a v=-1 {T0 + 150 * 10**9}".encode())  # late, rewrites a row
        eng.flush()
        assert eng.compact() == 1  # the late file overlaps one merged file: those two merge, whatever their size
        assert sorted(f.rows for f in eng.manifest.files) == [200, 200, 200]
        assert rows(eng, f"SELECT v FROM cpu WHERE time = to_timestamp_nanos({T0 + 150 * 10**9})") == [{"v": -1.0}]
        assert rows(eng, "SELECT count(*) AS n FROM cpu") == [{"n": 600}]
    finally:
        eng.close()


def test_failed_flush_is_retried_and_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eng = Engine.open(tmp_path / "db", EngineConfig(background=False))
    eng.write_lines("cnosdb", "public", f"cpu,host=a v=1 {T0}".encode())
    real_write = Engine._write_windows

    def disk_full(*args: object, **kwargs: object) -> object:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Engine, "_write_windows", disk_full)
    with pytest.raises(OSError):
        eng.flush()
    monkeypatch.setattr(Engine, "_write_windows", real_write)
    assert rows(eng, "SELECT host FROM cpu") == [{"host": "a"}]  # still readable from the frozen memtable
    eng.write_lines("cnosdb", "public", f"cpu,host=b v=2 {T0}".encode())
    eng.flush()  # writes the memtable that failed, then the new one
    assert eng.stats()["memtable_rows"] == 0
    eng.close()
    eng = Engine.open(tmp_path / "db", EngineConfig(background=False))
    try:
        assert eng.stats()["wal_replayed_records"] == 0
        assert rows(eng, "SELECT host, v FROM cpu ORDER BY host") == [{"host": "a", "v": 1.0}, {"host": "b", "v": 2.0}]
    finally:
        eng.close()


def test_a_data_directory_is_opened_by_one_engine_at_a_time(tmp_path: Path) -> None:
    first = Engine.open(tmp_path / "db", EngineConfig(background=False))
    try:
        with pytest.raises(OSError, match="in use by another tidepool db process"):
            Engine.open(tmp_path / "db", EngineConfig(background=False))
    finally:
        first.close()
    Engine.open(tmp_path / "db", EngineConfig(background=False)).close()


def test_memtable_queries_between_writes_stay_exact(engine: Engine) -> None:
    def write(times: range, value: float) -> None:
        body = "\n".join(f"m,host=a v={value} {T0 + t}" for t in times)
        engine.write_lines("cnosdb", "public", body.encode())

    write(range(10), 1)
    assert rows(engine, "SELECT count(*) AS n, sum(v) AS s FROM m") == [{"n": 10, "s": 10.0}]
    write(range(10, 20), 2)  # later times only: merged incrementally
    assert rows(engine, "SELECT count(*) AS n, sum(v) AS s FROM m") == [{"n": 20, "s": 30.0}]
    write(range(5, 6), 99)  # an earlier time again: overwrites one row
    write(range(20, 21), 3)
    assert rows(engine, "SELECT count(*) AS n, sum(v) AS s FROM m") == [{"n": 21, "s": 30.0 - 1 + 99 + 3}]
    assert rows(engine, f"SELECT v FROM m WHERE time = to_timestamp_nanos({T0 + 5})") == [{"v": 99.0}]


def test_names_from_clients_never_leave_the_data_directory(tmp_path: Path) -> None:
    eng = Engine.open(tmp_path / "db", EngineConfig(background=False))
    try:
        eng.execute("cnosdb", "public", 'CREATE DATABASE ".."')
        eng.write_lines("cnosdb", "..", f"../../escape,host=a v=1 {T0}\n{'x' * 300},host=a v=2 {T0}".encode())
        eng.flush()
        files = [p for p in tmp_path.rglob("*.parquet")]
        assert len(files) == 2 and all((tmp_path / "db" / "data") in p.parents for p in files)
        assert rows(eng, 'SELECT v FROM "../../escape"', "..") == [{"v": 1.0}]
        assert rows(eng, f'SELECT v FROM "{"x" * 300}"', "..") == [{"v": 2.0}]
    finally:
        eng.close()


def test_timestamp_overflowing_after_precision_is_a_line_protocol_error(engine: Engine) -> None:
    with pytest.raises(DbError) as info:
        engine.write_lines("cnosdb", "public", b"m v=1 1700000000000000000", precision="s")
    assert (info.value.code, info.value.message) == ("040004", "Error parsing message: timestamp overflow")


def test_writes_after_close_are_refused_not_lost(tmp_path: Path) -> None:
    eng = Engine.open(tmp_path / "db", EngineConfig(background=False))
    eng.close()
    with pytest.raises(DbError) as info:
        eng.write_lines("cnosdb", "public", f"m v=1 {T0}".encode())
    assert info.value.http_status == 500 and "shutting down" in info.value.message
