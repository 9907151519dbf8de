"""Deduplication: one row per (series, time), the later write winning field by field, rows sorted by series."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from tidepool.db.storage.memtable import dedup

TAG = st.one_of(st.none(), st.sampled_from(["", "a", "b", "é"]))
ROW = st.tuples(
    TAG, TAG, st.integers(0, 3), st.one_of(st.none(), st.integers(-5, 5)), st.one_of(st.none(), st.booleans())
)


def reference(rows: list[tuple[str | None, str | None, int, int | None, bool | None]]) -> list[dict[str, object]]:
    merged: dict[tuple[str | None, str | None, int], dict[str, object]] = {}
    for ta, tb, t, f, g in rows:  # oldest first
        row = merged.setdefault((ta, tb, t), {"time": t, "ta": ta, "tb": tb, "f": None, "g": None})
        if f is not None:
            row["f"] = f
        if g is not None:
            row["g"] = g

    def order(key: tuple[str | None, str | None, int]) -> tuple[object, ...]:
        return (*tuple((0, "") if v is None else (1, v) for v in key[:2]), key[2])

    return [merged[k] for k in sorted(merged, key=order)]


@settings(max_examples=150, deadline=None)
@given(st.lists(ROW, max_size=40))
def test_dedup_matches_a_row_by_row_merge(
    rows: list[tuple[str | None, str | None, int, int | None, bool | None]],
) -> None:
    table = pa.table(
        {
            "time": pa.array([r[2] for r in rows], pa.int64()),
            "ta": pa.array([r[0] for r in rows], pa.string()),
            "tb": pa.array([r[1] for r in rows], pa.string()),
            "f": pa.array([r[3] for r in rows], pa.int64()),
            "g": pa.array([r[4] for r in rows], pa.bool_()),
        }
    )
    result = dedup(table, ["ta", "tb"])
    assert result.schema == table.schema
    assert result.to_pylist() == reference(rows)
