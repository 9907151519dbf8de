"""SQL through the engine: CnosDB's statements, result column names and Arrow types, and its error codes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from tidepool.db.engine import Engine, EngineConfig
from tidepool.db.errors import DbError

T0 = 1_642_176_000_000_000_000  # 2022-01-14T16:00:00Z
MIN = 60 * 10**9
AIR = "\n".join(
    [
        f"air,station=XiaoMaiDao visibility=50,temperature=63,pressure=52 {T0}",
        f"air,station=XiaoMaiDao visibility=58,temperature=64,pressure=55 {T0 + 10 * MIN}",
        f"air,station=XiaoMaiDao visibility=60,temperature=61,pressure=50 {T0 + 20 * MIN}",
        f"air,station=LianYunGang visibility=69,temperature=56,pressure=57 {T0}",
        f"air,station=LianYunGang visibility=70,temperature=58,pressure=59 {T0 + 10 * MIN}",
    ]
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine.open(tmp_path / "db", EngineConfig(background=False))
    eng.write_lines("cnosdb", "public", AIR.encode())
    yield eng
    eng.close()


def run(engine: Engine, sql: str, database: str = "public") -> pa.Table:
    return engine.execute("cnosdb", database, sql).to_table()


def error(engine: Engine, sql: str, database: str = "public") -> DbError:
    with pytest.raises(DbError) as info:
        run(engine, sql, database)
    return info.value


@pytest.mark.parametrize("flushed", [False, True])
def test_select_where_group_order_limit(engine: Engine, flushed: bool) -> None:
    if flushed:
        engine.flush()
    table = run(
        engine,
        "SELECT station, avg(temperature) AS t, count(*) AS n FROM air WHERE time >= '2022-01-14T16:00:00' "
        "AND visibility > 50 GROUP BY station ORDER BY station DESC LIMIT 5",
    )
    assert table.to_pylist() == [
        {"station": "XiaoMaiDao", "t": 62.5, "n": 2},
        {"station": "LianYunGang", "t": 57.0, "n": 2},
    ]
    table = run(engine, "SELECT * FROM air ORDER BY time, station LIMIT 2 OFFSET 1")
    assert table.schema.names == ["time", "station", "visibility", "temperature", "pressure"]
    assert table.schema.field("time").type == pa.timestamp("ns")
    assert table.schema.field("station").type == pa.string()
    assert table.column("station").to_pylist() == ["XiaoMaiDao", "LianYunGang"]


def test_select_literal_is_named_as_datafusion_names_it(engine: Engine) -> None:
    table = run(engine, "select 1")
    assert table.schema.names == ["Int64(1)"] and table.column(0).to_pylist() == [1]


def test_generated_aggregate_names_are_upper_case_as_in_cnosdb(engine: Engine) -> None:
    table = run(engine, "SELECT count(*), avg(temperature), max(pressure) AS max FROM air")
    assert table.schema.names == ["COUNT(UInt8(1))", "AVG(air.temperature)", "max"]
    assert table.to_pylist() == [{"COUNT(UInt8(1))": 5, "AVG(air.temperature)": 60.4, "max": 59.0}]


def test_aggregates_and_percentiles(engine: Engine) -> None:
    table = run(
        engine,
        "SELECT min(pressure) AS lo, max(pressure) AS hi, sum(visibility) AS s, stddev(visibility) > 0 AS sd, "
        "approx_percentile_cont(pressure, 0.5) AS p50, median(pressure) AS med FROM air",
    )
    assert table.to_pylist() == [{"lo": 50.0, "hi": 59.0, "s": 307.0, "sd": True, "p50": 55.0, "med": 55.0}]


def test_cnosdb_first_and_last_take_the_value_at_min_and_max_time(engine: Engine) -> None:
    table = run(
        engine, "SELECT station, first(time, pressure), last(time, pressure) FROM air GROUP BY station ORDER BY station"
    )
    assert table.schema.names == ["station", "first(air.time,air.pressure)", "last(air.time,air.pressure)"]
    assert table.to_pylist()[1] == {
        "station": "XiaoMaiDao",
        "first(air.time,air.pressure)": 52.0,
        "last(air.time,air.pressure)": 50.0,
    }


def test_date_bin_and_time_window_bucket_rows(engine: Engine) -> None:
    table = run(
        engine,
        "SELECT date_bin(INTERVAL '20 minutes', time) AS b, count(*) AS n FROM air GROUP BY b ORDER BY b",
    )
    assert table.column("n").to_pylist() == [4, 1]
    table = run(
        engine,
        "SELECT time_window(time, '20m') AS w, max(temperature) AS t FROM air GROUP BY w ORDER BY w",
    )
    starts = [row["w"]["start"] for row in table.cast(_plain(table.schema)).to_pylist()]
    assert [row["t"] for row in table.to_pylist()] == [64.0, 61.0]
    assert starts == [T0, T0 + 20 * MIN]


def _plain(schema: pa.Schema) -> pa.Schema:
    struct = pa.struct([("start", pa.int64()), ("end", pa.int64())])
    return pa.schema([pa.field(f.name, struct) if pa.types.is_struct(f.type) else f for f in schema])


def test_show_and_describe(engine: Engine) -> None:
    assert run(engine, "SHOW DATABASES").to_pylist() == [{"database_name": "public"}]
    assert run(engine, "SHOW TABLES").to_pylist() == [{"table_name": "air"}]
    described = run(engine, "DESCRIBE TABLE air").to_pylist()
    assert described[0] == {
        "column_name": "time",
        "data_type": "TIMESTAMP(NANOSECOND)",
        "column_type": "TIME",
        "compression_codec": "DEFAULT",
    }
    assert [(r["column_name"], r["data_type"], r["column_type"]) for r in described[1:]] == [
        ("station", "STRING", "TAG"),
        ("visibility", "DOUBLE", "FIELD"),
        ("temperature", "DOUBLE", "FIELD"),
        ("pressure", "DOUBLE", "FIELD"),
    ]
    db = run(engine, "DESCRIBE DATABASE public").to_pylist()[0]
    assert (db["ttl"], db["shard"], db["vnode_duration"], db["replica"], db["precision"]) == (
        "INF",
        1,
        "1year",
        1,
        "NS",
    )


def test_create_alter_drop_database(engine: Engine) -> None:
    assert run(engine, "CREATE DATABASE oceanic WITH TTL '30d' SHARD 2 VNODE_DURATION '1d' REPLICA 1").num_rows == 0
    assert error(engine, "CREATE DATABASE oceanic").code == "030018"
    run(engine, "CREATE DATABASE IF NOT EXISTS oceanic")
    run(engine, "ALTER DATABASE oceanic SET TTL '10d'")
    described = run(engine, "DESCRIBE DATABASE oceanic").to_pylist()[0]
    assert (described["ttl"], described["shard"], described["vnode_duration"]) == ("10days", 2, "1day")
    assert run(engine, "SHOW DATABASES").column(0).to_pylist() == ["oceanic", "public"]
    engine.write_lines("cnosdb", "oceanic", b"m v=1")
    run(engine, "DROP DATABASE oceanic")
    assert not engine.database_exists("cnosdb", "oceanic")
    assert error(engine, "DROP DATABASE oceanic").message == 'Database not found: "oceanic"'
    run(engine, "DROP DATABASE IF EXISTS oceanic")
    run(engine, "CREATE DATABASE oceanic")
    assert run(engine, "SHOW TABLES", "oceanic").num_rows == 0  # nothing of the dropped namesake comes back


def test_create_table_insert_values_and_select(engine: Engine) -> None:
    run(engine, "CREATE TABLE t (f DOUBLE, g BIGINT UNSIGNED CODEC(DELTA), s STRING, TAGS(host))")
    assert error(engine, "CREATE TABLE t (f DOUBLE, TAGS(host))").message == "Table t already exists."
    inserted = run(
        engine, "INSERT INTO t (time, host, f, g) VALUES (1000, 'a', 2.5, 7), ('1970-01-01 00:00:02', 'b', 3, 8)"
    )
    assert inserted.schema == pa.schema([("rows", pa.uint64())]) and inserted.to_pylist() == [{"rows": 2}]
    table = run(engine, "SELECT * FROM t ORDER BY time")
    assert table.schema.names == ["time", "host", "f", "g", "s"]
    assert table.schema.field("g").type == pa.uint64()
    assert table.column("time").cast(pa.int64()).to_pylist() == [1000, 2 * 10**9]
    assert table.column("f").to_pylist() == [2.5, 3.0]
    assert table.column("s").to_pylist() == [None, None]
    assert error(engine, "INSERT INTO t (time, nosuch) VALUES (1, 2)").code == "010044"
    assert error(engine, "INSERT INTO nosuch (time, f) VALUES (1, 2)").code == "010001"
    assert error(engine, "INSERT INTO t (time, host) VALUES (1, 'a')").message == "Coordinator: Fields can't be empty"


def test_delete_by_tag_and_time_and_not_by_field(engine: Engine) -> None:
    engine.flush()
    engine.write_lines("cnosdb", "public", f"air,station=XiaoMaiDao visibility=1 {T0 + 30 * MIN}".encode())
    err = error(engine, "DELETE FROM air WHERE visibility > 10")
    assert (err.code, err.message) == (
        "010005",
        "This feature is not implemented: Filtering on the field column on the tskv table in delete statement",
    )
    run(engine, "DELETE FROM air a WHERE station = 'XiaoMaiDao' AND time >= '2022-01-14T16:10:00'")  # with an alias
    remaining = run(engine, "SELECT station, visibility FROM air ORDER BY station, time").to_pylist()
    assert remaining == [
        {"station": "LianYunGang", "visibility": 69.0},
        {"station": "LianYunGang", "visibility": 70.0},
        {"station": "XiaoMaiDao", "visibility": 50.0},
    ]


def test_show_series_and_tag_values(engine: Engine) -> None:
    run(engine, "ALTER TABLE air ADD TAG region")
    run(engine, f"INSERT INTO air (time, station, region, visibility) VALUES ({T0}, 'a', '', 1)")
    keys = run(engine, "SHOW SERIES FROM air").column("key").to_pylist()
    assert keys == ["air,region=,station=a", "air,station=LianYunGang", "air,station=XiaoMaiDao"]
    keys = run(engine, "SHOW SERIES FROM air WHERE station = 'a'").column("key").to_pylist()
    assert keys == ["air,region=,station=a"]
    assert error(engine, "SHOW SERIES FROM air WHERE visibility > 1").code == "010046"
    assert error(engine, "SHOW SERIES").code == "010009"
    values = run(engine, "SHOW TAG VALUES FROM air WITH KEY IN (station, region)").to_pylist()
    assert values == [
        {"key": "region", "value": ""},
        {"key": "station", "value": "LianYunGang"},
        {"key": "station", "value": "XiaoMaiDao"},
        {"key": "station", "value": "a"},
    ]
    values = run(engine, "SHOW TAG VALUES FROM air WITH KEY IN (station) WHERE region = ''").to_pylist()
    assert values == [{"key": "station", "value": "a"}]
    assert error(engine, "SHOW TAG VALUES FROM air WITH KEY = station WHERE visibility > 60").code == "010046"
    ordered = run(engine, "SHOW TAG VALUES FROM air WITH KEY IN (station, region) ORDER BY key DESC, value ASC")
    assert [(r["key"], r["value"]) for r in ordered.to_pylist()] == [
        ("station", "LianYunGang"),
        ("station", "XiaoMaiDao"),
        ("station", "a"),
        ("region", ""),
    ]


def test_errors_have_cnosdb_codes(engine: Engine) -> None:
    err = error(engine, "SELECT * FROM nosuch")  # as CnosDB's e2e tests show it over HTTP
    assert (err.code, err.message) == (
        "010001",
        "Datafusion: Error during planning: Table not found, tenant: cnosdb db: public, table: nosuch",
    )
    assert error(engine, "DESCRIBE TABLE nosuch").message == 'Table not found: "cnosdb.public.nosuch"'
    assert error(engine, "DELETE FROM nosuch").code == "010001"
    err = error(engine, "SELEC 1")
    assert err.code == "010009" and err.message.startswith("sql parser error: ")
    err = error(engine, "select 1; select 2")
    assert (err.code, err.message) == ("010013", "Multi-statement not allow, found num:2, sql:select 1; select 2")
    assert error(engine, "SELECT nosuch FROM air").code == "010001"
    assert error(engine, "SELECT 1", "nosuch").code == "030017"
    assert error(engine, "CREATE USER u").code == "010005"


def test_empty_statement_returns_nothing(engine: Engine) -> None:
    result = run(engine, "  ;  ")
    assert result.num_columns == 0 and result.num_rows == 0


def test_table_names_keep_their_case_and_need_quotes_as_in_datafusion(engine: Engine) -> None:
    engine.write_lines("cnosdb", "public", f"CPU,Host=a v=1 {T0}\ncpu,host=b v=2 {T0}".encode())
    engine.flush()
    assert run(engine, 'SELECT "Host", v FROM "CPU"').to_pylist() == [{"Host": "a", "v": 1.0}]
    assert run(engine, "SELECT host, v FROM CPU").to_pylist() == [{"host": "b", "v": 2.0}]  # unquoted: lower case
    run(engine, """DELETE FROM "CPU" WHERE "Host" = 'a'""")
    assert run(engine, 'SELECT count(*) AS n FROM "CPU"').to_pylist() == [{"n": 0}]
    assert run(engine, "SHOW SERIES FROM cpu").column("key").to_pylist() == ["cpu,host=b"]


def test_a_query_may_name_a_table_of_another_database(engine: Engine) -> None:
    run(engine, "CREATE DATABASE oceanic")
    engine.write_lines("cnosdb", "oceanic", f"buoy,id=1 wave=2.5 {T0}".encode())
    table = run(engine, "SELECT a.station, b.wave FROM air a JOIN oceanic.buoy b ON a.time = b.time ORDER BY station")
    assert table.to_pylist() == [{"station": "LianYunGang", "wave": 2.5}, {"station": "XiaoMaiDao", "wave": 2.5}]
    assert run(engine, "SELECT count(*) AS n FROM oceanic.buoy", "oceanic").to_pylist() == [{"n": 1}]
    assert run(engine, "SELECT count(*) AS n FROM public.air").to_pylist() == [{"n": 5}]
    err = error(engine, "SELECT * FROM oceanic.nosuch")
    assert (err.code, err.message) == (
        "010001",
        "Datafusion: Error during planning: Table not found, tenant: cnosdb db: oceanic, table: nosuch",
    )


def test_update_fields_and_tags(engine: Engine) -> None:
    engine.flush()
    engine.write_lines("cnosdb", "public", f"air,station=XiaoMaiDao visibility=1 {T0 + 30 * MIN}".encode())
    updated = run(engine, "UPDATE air SET pressure = pressure + 100, visibility = 0 WHERE station = 'XiaoMaiDao'")
    assert updated.to_pylist() == [{"rows": 4}]
    run(engine, "UPDATE air SET visibility = NULL")  # NULL changes nothing, as in CnosDB
    table = run(engine, "SELECT station, visibility, pressure FROM air ORDER BY station, time").to_pylist()
    assert table[2:] == [
        {"station": "XiaoMaiDao", "visibility": 0.0, "pressure": 152.0},
        {"station": "XiaoMaiDao", "visibility": 0.0, "pressure": 155.0},
        {"station": "XiaoMaiDao", "visibility": 0.0, "pressure": 150.0},
        {"station": "XiaoMaiDao", "visibility": 0.0, "pressure": None},
    ]
    assert table[:2] == [
        {"station": "LianYunGang", "visibility": 69.0, "pressure": 57.0},
        {"station": "LianYunGang", "visibility": 70.0, "pressure": 59.0},
    ]
    run(engine, "UPDATE air SET station = 'Renamed' WHERE station = 'LianYunGang'")
    assert run(engine, "SHOW TAG VALUES FROM air WITH KEY = station").column("value").to_pylist() == [
        "Renamed",
        "XiaoMaiDao",
    ]
    assert error(engine, "UPDATE air SET station = 'x', visibility = 1").code == "010003"
    assert error(engine, "UPDATE air SET time = 1").code == "010003"
    assert error(engine, "UPDATE air SET nosuch = 1").code == "010029"


def test_session_functions_name_the_current_database_and_tenant(engine: Engine) -> None:
    table = run(engine, "SELECT current_database(), current_tenant()")
    assert table.to_pylist() == [{"current_database()": "public", "current_tenant()": "cnosdb"}]


def test_comments_unicode_names_and_semicolons(engine: Engine) -> None:
    engine.write_lines("cnosdb", "public", f"météo,lieu=a v=1 {T0}".encode())
    assert run(engine, "-- the weather\nSELECT lieu FROM météo; -- done\n").to_pylist() == [{"lieu": "a"}]
    assert run(engine, "SELECT 'a;b' AS s;").to_pylist() == [{"s": "a;b"}]
    assert run(engine, "-- nothing but a comment").num_columns == 0


def test_sliding_time_window_counts_each_row_in_every_window_containing_it(engine: Engine) -> None:
    table = run(
        engine,
        "SELECT time_window(time, '20m', '10m') AS w, count(*) AS n, max(temperature) AS t FROM air "
        "WHERE station = 'XiaoMaiDao' GROUP BY w ORDER BY w",
    )
    starts = [row["w"]["start"] for row in table.cast(_plain(table.schema)).to_pylist()]
    assert starts == [T0 - 10 * MIN, T0, T0 + 10 * MIN, T0 + 20 * MIN]
    assert [(r["n"], r["t"]) for r in table.to_pylist()] == [(1, 63.0), (2, 64.0), (2, 64.0), (1, 61.0)]
    assert error(engine, "SELECT time_window(time, '10m', '3m') FROM air").code == "010058"


def test_cnosdb_mode_and_increase(engine: Engine) -> None:
    counter = [5, 7, 9, 2, 4]  # a reset after 9 counts the new value whole: 2 + 2 + 2 + 2
    engine.write_lines(
        "cnosdb", "public", "\n".join(f"net,host=a bytes={v} {T0 + i * MIN}" for i, v in enumerate(counter)).encode()
    )
    engine.flush()
    table = run(
        engine, "SELECT host, increase(time, bytes ORDER BY time) AS inc, mode(bytes) AS m FROM net GROUP BY host"
    )
    assert table.to_pylist() == [{"host": "a", "inc": 8.0, "m": 2.0}]
    assert run(engine, "SELECT mode(pressure) AS m FROM air").to_pylist() == [{"m": 50.0}]


def test_out_of_range_literals_and_bad_limits_are_errors_not_crashes(engine: Engine) -> None:
    assert error(engine, "INSERT INTO air (time, station, visibility) VALUES (99999999999999999999, 'a', 1)").code
    assert error(engine, "SHOW SERIES FROM air LIMIT x").code == "010009"
    assert error(engine, "SHOW SERIES FROM air LIMIT -1").code == "010009"
    assert run(engine, "SELECT count(*) AS n FROM air").to_pylist() == [{"n": 5}]


M2 = [
    ("1999-12-31 00:00:00.000", 111, 444, "tag11"),
    ("1999-12-31 00:00:00.005", 222, 333, "tag12"),
    ("1999-12-31 00:00:00.010", 333, 222, "tag13"),
    ("1999-12-31 00:00:00.015", 444, 111, "tag14"),
    ("1999-12-31 00:00:00.020", 222, 555, "tag11"),
    ("1999-12-31 00:00:00.025", 333, 444, "tag12"),
    ("1999-12-31 00:00:00.030", 444, 333, "tag13"),
    ("1999-12-31 00:00:00.035", 555, 222, "tag14"),
]
GAPFILL = (
    "SELECT t0, time_window_gapfill(time, interval '10 milliseconds') AS minute, {fill}(avg(f1)) FROM m2 "
    "WHERE time BETWEEN timestamp '1999-12-31T00:00:00.000Z' AND timestamp '1999-12-31T00:00:00.055Z' "
    "GROUP BY t0, minute"
)


def test_time_window_gapfill_with_interpolate_and_locf_as_in_cnosdb_docs(engine: Engine) -> None:
    run(engine, "CREATE TABLE m2 (f0 BIGINT, f1 DOUBLE, TAGS(t0, t1, t2))")
    values = ", ".join(f"('{t}', {f0}, {f1}, '{t0}')" for t, f0, f1, t0 in M2)
    run(engine, f"INSERT m2 (TIME, f0, f1, t0) VALUES {values}")
    table = run(engine, GAPFILL.format(fill="interpolate"))
    assert table.schema.names == ["t0", "minute", "AVG(m2.f1)"]
    rows = table.to_pylist()
    assert len(rows) == 24 and [r["t0"] for r in rows[::6]] == ["tag11", "tag12", "tag13", "tag14"]
    assert [r["AVG(m2.f1)"] for r in rows[:6]] == [444.0, 499.5, 555.0, None, None, None]
    assert [r["AVG(m2.f1)"] for r in rows[12:18]] == [None, 222.0, 277.5, 333.0, None, None]
    locf = run(engine, GAPFILL.format(fill="locf")).to_pylist()
    assert [r["locf(AVG(m2.f1))"] for r in locf[6:12]] == [333.0, 333.0, 444.0, 444.0, 444.0, 444.0]
    assert [r["locf(AVG(m2.f1))"] for r in locf[18:24]] == [None, 111.0, 111.0, 222.0, 222.0, 222.0]
    assert error(engine, "SELECT time_window_gapfill(time, interval '10 milliseconds') AS w FROM m2 GROUP BY w").code


def test_time_window_column_is_named_as_cnosdb_names_it(engine: Engine) -> None:
    names = run(engine, "SELECT time_window(time, INTERVAL '3 day') FROM air").schema.names
    assert names == ['TIME_WINDOW(air.time,IntervalMonthDayNano("55340232221128654848"))']  # CnosDB's docs
    names = run(engine, "SELECT time_window(time, '10m') FROM air").schema.names
    assert names == ['TIME_WINDOW(air.time,Utf8("10m"))']


def test_a_dropped_field_can_come_back_with_another_type(engine: Engine) -> None:
    engine.flush()
    run(engine, "ALTER TABLE air DROP pressure")
    assert "pressure" not in run(engine, "SELECT * FROM air").schema.names
    engine.write_lines("cnosdb", "public", f'air,station=a pressure="high" {T0}'.encode())
    table = run(engine, "SELECT station, pressure FROM air WHERE pressure IS NOT NULL")
    assert table.to_pylist() == [{"station": "a", "pressure": "high"}]
    assert run(engine, "SELECT count(*) AS n FROM air").to_pylist() == [{"n": 6}]


def test_show_statements_order_only_by_their_own_columns(engine: Engine) -> None:
    err = error(engine, "SHOW SERIES FROM air ORDER BY visibility")
    assert (err.code, err.message) == (
        "010001",
        "Datafusion: Schema error: No field named visibility. Valid fields are key.",
    )
    values = run(engine, "SHOW TAG VALUES FROM air WITH KEY = station ORDER BY value DESC").column("value").to_pylist()
    assert values == ["XiaoMaiDao", "LianYunGang"]


def test_a_string_column_compared_with_a_number_compares_as_strings_as_in_cnosdb(engine: Engine) -> None:
    engine.write_lines("cnosdb", "public", f"dml,t0=tag11 f0=1i {T0}\ndml,t0=11 f0=2i {T0}".encode())
    assert run(engine, "SELECT f0 FROM dml WHERE t0 = 11").to_pylist() == [{"f0": 2}]
    assert run(engine, "SELECT count(*) AS n FROM dml WHERE f0 - 1 = 0 AND t0 <> 11").to_pylist() == [{"n": 1}]
    run(engine, "DELETE FROM dml WHERE t0 = 11")
    assert run(engine, "SELECT t0 FROM dml").to_pylist() == [{"t0": "tag11"}]


def test_describe_database_shows_options_as_cnosdb(engine: Engine) -> None:
    run(
        engine,
        "CREATE DATABASE tt WITH TTL 'inf' SHARD 6 VNODE_DURATION '2y1M' REPLICA 1 PRECISION 'us' "
        "MAX_MEMCACHE_SIZE '128MiB' MEMCACHE_PARTITIONS 10 WAL_MAX_FILE_SIZE '300M' WAL_SYNC 'true' "
        "STRICT_WRITE 'true' MAX_CACHE_READERS 100",
    )
    run(engine, "ALTER DATABASE tt SET TTL '1M'")
    row = run(engine, "DESCRIBE DATABASE tt").to_pylist()[0]  # the values of CnosDB's describe_database test
    assert list(row.values()) == ["1month", 6, "2years 1month", 1, "US", "128 MiB", 10, "286.102294921875 MiB",
                                  True, True, 100]  # fmt: skip
    err = error(engine, "ALTER DATABASE tt SET MAX_MEMCACHE_SIZE '100MiB'")
    assert err.message.endswith("only can modify database option: TTL, SHARD, VNODE_DURATION, REPLICA")


def test_public_dot_table_from_another_database_reads_public(engine: Engine) -> None:
    run(engine, "CREATE DATABASE other")
    engine.write_lines("cnosdb", "other", f"air,station=elsewhere visibility=1 {T0}".encode())
    assert run(engine, "SELECT count(*) AS n FROM air", "other").to_pylist() == [{"n": 1}]
    assert run(engine, "SELECT count(*) AS n FROM public.air", "other").to_pylist() == [{"n": 5}]
    err = error(engine, "SELECT * FROM public.nosuch", "other")
    assert err.message == "Datafusion: Error during planning: Table not found, tenant: cnosdb db: public, table: nosuch"


def test_create_table_checks_and_column_order_as_cnosdb(engine: Engine) -> None:
    run(engine, "CREATE TABLE t0 (c1 BIGINT CODEC(delta), c2 STRING, TAGS(c6, c7))")
    run(engine, "ALTER TABLE t0 ADD TAG c8")
    assert run(engine, "SELECT * FROM t0").schema.names == ["time", "c6", "c7", "c1", "c2", "c8"]
    assert (
        error(engine, "CREATE TABLE t1 (c1 BIGINT CODEC(DEL))").message == "sql parser error: DEL is not valid encoding"
    )
    assert (
        error(engine, "CREATE TABLE t1 (c1 BIGINT CODEC())").message
        == "sql parser error: expect codec encoding type in ()"
    )
    err = error(engine, "CREATE TABLE t1 (c4 BOOLE)")
    assert (err.code, err.message) == ("010041", "Semantic error: Unexpected data type BOOLE of c4, ")
    assert (
        error(engine, 'CREATE TABLE "tb/1" (c BIGINT)').message
        == "sql parser error: not supported keyword contains '/': tb/1"
    )
    assert error(engine, "ALTER TABLE t0 DROP c7").message == "Semantic error: Can't drop tag column c7."
    assert error(engine, "ALTER TABLE t0 ADD TAG c7").message == "Semantic error: column c7 already exists in table t0"


def test_insert_cast_errors_as_cnosdb(engine: Engine) -> None:
    run(engine, "CREATE TABLE t0 (c1 BIGINT, c3 BIGINT UNSIGNED, c4 BOOLEAN, c5 DOUBLE, TAGS(c6))")
    insert = "INSERT INTO t0 (TIME, c1, c3, c4, c5, c6) VALUES ({}, -1234, {}, false, {}, 'beijing')"
    err = error(engine, insert.format(101, -1234, 1.2))
    assert (err.code, err.message) == ("010002", "Arrow: Cast error: Can't cast value -1234 to type UInt64")
    assert error(engine, insert.format(102, 1234, "'failed'")).message == (
        "Arrow: Cast error: Cannot cast string 'failed' to value of Float64 type"
    )
    assert error(engine, insert.format(0.1, 1234, 1.2)).message == (
        "Datafusion: This feature is not implemented: Unsupported CAST from Float64 to Timestamp(Nanosecond, None)"
    )
    assert run(engine, insert.format(103, 1234, "'1.5'")).to_pylist() == [{"rows": 1}]
    assert run(engine, "SELECT c3, c5 FROM t0").to_pylist() == [{"c3": 1234, "c5": 1.5}]
