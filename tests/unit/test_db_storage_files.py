"""Parquet files: DOUBLE columns stored as scaled decimals come back bit for bit, or are left as doubles."""

from __future__ import annotations

import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from tidepool.db.engine import Engine, EngineConfig
from tidepool.db.storage.files import decode_decimals, encode_decimals, write_parquet


def bits(values: list[float | None]) -> list[bytes | None]:
    return [None if v is None else struct.pack("<d", v) for v in values]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=True)), min_size=1, max_size=50))
def test_any_doubles_round_trip_exactly(values: list[float | None]) -> None:
    table = pa.table({"v": pa.array(values, pa.float64())})
    stored, scales = encode_decimals(table)
    assert bits(decode_decimals(stored, scales).column("v").to_pylist()) == bits(values)


def test_two_decimal_readings_are_stored_as_integers(tmp_path: Path) -> None:
    values = [83.45, 0.07, 100.0, -12.5, None, 99.99]
    table = pa.table({"time": pa.array(range(6), pa.timestamp("ns")), "v": pa.array(values, pa.float64())})
    size, scales = write_parquet(tmp_path, "f.parquet", table, [])
    assert scales == {"v": 2} and size > 0
    physical = pq.read_table(tmp_path / "f.parquet")
    assert physical.schema.field("v").type == pa.int64()
    assert decode_decimals(physical, scales).column("v").to_pylist() == values


def test_values_that_are_not_short_decimals_stay_doubles(tmp_path: Path) -> None:
    for values in ([0.1 + 0.2, 1e-300, 2.0], [1.0, -0.0]):
        table = pa.table({"v": pa.array(values, pa.float64())})
        _, scales = write_parquet(tmp_path, "f.parquet", table, [])
        assert scales == {}
        assert bits(pq.read_table(tmp_path / "f.parquet").column("v").to_pylist()) == bits(values)


def test_engine_reads_mixed_files_back_exactly(tmp_path: Path) -> None:
    engine = Engine.open(tmp_path / "db", EngineConfig(background=False))
    try:
        engine.write_lines("cnosdb", "public", b"m,h=a v=1.25 1\nm,h=a v=2.5 2")
        engine.flush()  # a file where v is stored as integers
        engine.write_lines("cnosdb", "public", b"m,h=a v=0.30000000000000004 3\nm,h=b v=1e-300 4")
        engine.flush()  # a file where v stays a double
        expected = [1.25, 2.5, 0.30000000000000004, 1e-300]
        query = "SELECT v FROM m ORDER BY time"
        assert engine.execute("cnosdb", "public", query).to_table().column("v").to_pylist() == expected
        assert engine.execute("cnosdb", "public", "SELECT max(v) AS m FROM m WHERE v < 2").to_table().to_pylist() == [
            {"m": 1.25}
        ]
        engine.compact(force=True)
        assert engine.stats()["parquet_files"] == 1
        assert engine.execute("cnosdb", "public", query).to_table().column("v").to_pylist() == expected
    finally:
        engine.close()
