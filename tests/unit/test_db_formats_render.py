"""Result renderings, byte for byte as CnosDB (arrow-rs 42 writers) produces them.

Expected bytes come from CnosDB's own tests (e2e_test, result_format.rs), arrow-rs's writer tests and the
reference notes in ../shared/reference/cnosdb.md, not from this implementation's output.
"""

from __future__ import annotations

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidepool.db.errors import DbError
from tidepool.db.formats import (
    ResultFormat,
    csv_column,
    format_float_lexical,
    format_float_ryu,
    format_from_accept,
    json_column,
    render_bytes,
    text_cells,
)


def _batch(**columns: pa.Array) -> pa.RecordBatch:
    return pa.record_batch(list(columns.values()), names=list(columns))


ABC = _batch(a=pa.array([1, 2, 3], pa.int32()), b=pa.array([4, 5, 6], pa.int32()), c=pa.array([7, 8, 9], pa.int32()))


def test_select_one_renders_as_cnosdb_csv() -> None:
    batch = _batch(**{"Int64(1)": pa.array([1], pa.int64())})
    assert render_bytes(ResultFormat.CSV, batch.schema, [batch]) == b"Int64(1)\n1\n"


def test_csv_of_upserted_row_matches_cnosdb_e2e() -> None:
    batch = _batch(
        time=pa.array([1690510331000000000], pa.timestamp("ns")),
        ta=pa.array(["a1"]),
        fa=pa.array([1.0]),
        fb=pa.array([2.0]),
    )
    assert render_bytes(ResultFormat.CSV, batch.schema, [batch]) == (
        b"time,ta,fa,fb\n2023-07-28T02:12:11.000000000,a1,1.0,2.0\n"
    )


def test_csv_json_ndjson_of_integers_match_cnosdb_unit_tests() -> None:
    assert render_bytes(ResultFormat.CSV, ABC.schema, [ABC]) == b"a,b,c\n1,4,7\n2,5,8\n3,6,9\n"
    assert render_bytes(ResultFormat.TSV, ABC.schema, [ABC]) == b"a\tb\tc\n1\t4\t7\n2\t5\t8\n3\t6\t9\n"
    assert render_bytes(ResultFormat.JSON, ABC.schema, [ABC]) == (
        b'[{"a":1,"b":4,"c":7},{"a":2,"b":5,"c":8},{"a":3,"b":6,"c":9}]'
    )
    assert render_bytes(ResultFormat.NDJSON, ABC.schema, [ABC]) == (
        b'{"a":1,"b":4,"c":7}\n{"a":2,"b":5,"c":8}\n{"a":3,"b":6,"c":9}\n'
    )


def test_results_split_over_batches_render_as_one() -> None:
    first, second = ABC.slice(0, 1), ABC.slice(1)
    for fmt in ResultFormat:
        assert render_bytes(fmt, ABC.schema, [first, second]) == render_bytes(fmt, ABC.schema, [ABC])


def test_csv_mixed_types_match_arrow_csv_writer() -> None:
    batch = _batch(
        c1=pa.array(["Lorem ipsum dolor sit amet", "consectetur adipiscing elit", "sed do eiusmod tempor"]),
        c2=pa.array([123.564532, None, -556132.25]),
        c3=pa.array([3, 2, 1], pa.uint32()),
        c4=pa.array([True, False, None]),
        c5=pa.array([None, 1555584887378, 1555555555555], pa.timestamp("ms")),
        c7=pa.array(["cupcakes", "cupcakes", "foo"]).dictionary_encode(),
    )
    assert render_bytes(ResultFormat.CSV, batch.schema, [batch]).decode() == (
        "c1,c2,c3,c4,c5,c7\n"
        "Lorem ipsum dolor sit amet,123.564532,3,true,,cupcakes\n"
        "consectetur adipiscing elit,,2,false,2019-04-18T10:54:47.378000000,cupcakes\n"
        "sed do eiusmod tempor,-556132.25,1,,2019-04-18T02:45:55.555000000,foo\n"
    )


def test_csv_quotes_only_fields_that_need_it() -> None:
    batch = _batch(**{"first(air.time,air.temperature)": pa.array(['say "hi"', "a,b", "plain"])})
    assert render_bytes(ResultFormat.CSV, batch.schema, [batch]) == (
        b'"first(air.time,air.temperature)"\n"say ""hi"""\n"a,b"\nplain\n'
    )


def test_json_leaves_out_null_fields() -> None:
    batch = _batch(c1=pa.array([1, 2, 3, None, 5], pa.int32()), c2=pa.array(["a", "b", "c", "d", None], pa.string()))
    assert render_bytes(ResultFormat.NDJSON, batch.schema, [batch]) == (
        b'{"c1":1,"c2":"a"}\n{"c1":2,"c2":"b"}\n{"c1":3,"c2":"c"}\n{"c2":"d"}\n{"c1":5}\n'
    )


def test_json_timestamps_use_chrono_debug_form() -> None:
    nanos = 1542129070011375885
    batch = _batch(
        nanos=pa.array([nanos], pa.timestamp("ns")),
        micros=pa.array([nanos // 1000], pa.timestamp("us")),
        millis=pa.array([nanos // 1000000], pa.timestamp("ms")),
        secs=pa.array([nanos // 1000000000], pa.timestamp("s")),
    )
    assert render_bytes(ResultFormat.NDJSON, batch.schema, [batch]) == (
        b'{"nanos":"2018-11-13T17:11:10.011375885","micros":"2018-11-13T17:11:10.011375",'
        b'"millis":"2018-11-13T17:11:10.011","secs":"2018-11-13T17:11:10"}\n'
    )


def test_table_matches_arrow_pretty_print() -> None:
    batch = _batch(a=pa.array(["a", "b", None, "d"]), b=pa.array([1, None, 10, 100], pa.int32()))
    assert render_bytes(ResultFormat.TABLE, batch.schema, [batch]).decode() == "\n".join(
        [
            "+---+-----+",
            "| a | b   |",
            "+---+-----+",
            "| a | 1   |",
            "| b |     |",
            "|   | 10  |",
            "| d | 100 |",
            "+---+-----+",
        ]
    )


def test_statement_without_output_has_an_empty_body() -> None:
    for fmt in ResultFormat:
        assert render_bytes(fmt, pa.schema([]), []) == b""


def test_query_without_rows_prints_header_in_csv_but_nothing_in_json() -> None:
    schema = pa.schema([("a", pa.int64())])
    empty = pa.record_batch([pa.array([], pa.int64())], schema=schema)
    assert render_bytes(ResultFormat.CSV, schema, [empty]) == b"a\n"
    assert render_bytes(ResultFormat.JSON, schema, [empty]) == b""
    assert render_bytes(ResultFormat.NDJSON, schema, []) == b""


@pytest.mark.parametrize(
    ("value", "lexical", "ryu"),
    [
        (1.0, "1.0", "1.0"),
        (0.1, "0.1", "0.1"),
        (66.94915254237289, "66.94915254237289", "66.94915254237289"),
        (1e9, "1000000000.0", "1000000000.0"),
        (1e10, "1.0e10", "10000000000.0"),
        (1e16, "1.0e16", "1e16"),
        (1e-5, "0.00001", "0.00001"),
        (1e-6, "1.0e-6", "1e-6"),
        (-2.5e-7, "-2.5e-7", "-2.5e-7"),
        (0.0, "0.0", "0.0"),
    ],
)
def test_floats_print_as_lexical_and_ryu(value: float, lexical: str, ryu: str) -> None:
    assert format_float_lexical(value) == lexical
    assert format_float_ryu(value) == ryu


@pytest.mark.parametrize(
    ("accept", "fmt"),
    [
        (None, ResultFormat.CSV),
        ("*/*", ResultFormat.CSV),
        ("application/*", ResultFormat.CSV),
        ("application/csv", ResultFormat.CSV),
        ("text/tsv", ResultFormat.TSV),
        ("application/json", ResultFormat.JSON),
        ("application/nd-json", ResultFormat.NDJSON),
        ("text/table", ResultFormat.TABLE),
        ("application/JSON", ResultFormat.JSON),
    ],
)
def test_accept_header_selects_format(accept: str | None, fmt: ResultFormat) -> None:
    assert format_from_accept(accept) is fmt


@pytest.mark.parametrize("accept", ["application/ndjson", "*", "xx", "text/html"])
def test_unknown_accept_is_a_bad_request(accept: str) -> None:
    with pytest.raises(DbError) as failure:
        format_from_accept(accept)
    assert (failure.value.http_status, failure.value.code) == (400, "040005")


# --- the column-at-a-time renderers agree with the per-value reference formatting -------------------------------

FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e12, max_value=1e12),
    st.floats(min_value=-1e-3, max_value=1e-3),
    st.sampled_from([0.0, -0.0, 1.0, 1e9, 1e10, 1e15, 1e16, 1e-5, 1e-6, 123.456, 12345678901.0]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), FLOATS), min_size=1, max_size=40))
def test_float_columns_render_like_per_value_formatting(values: list[float | None]) -> None:
    array = pa.array(values, pa.float64())
    expected_csv = ["" if v is None else format_float_lexical(v) for v in values]
    assert csv_column(array, ",").to_pylist() == expected_csv
    expected_json = ["" if v is None or v - v != 0.0 else f'"x":{format_float_ryu(v)},' for v in values]
    assert json_column(array, "x").to_pylist() == expected_json


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=12)), min_size=1, max_size=30))
def test_string_columns_render_like_per_value_formatting(values: list[str | None]) -> None:
    array = pa.array(values, pa.string())
    expected_csv = [
        "" if v is None else (f'"{v.replace(chr(34), chr(34) * 2)}"' if any(c in v for c in ',"\n\r') else v)
        for v in values
    ]
    assert csv_column(array, ",").to_pylist() == expected_csv
    expected_json = ["" if v is None else f'"s":{orjson.dumps(v).decode()},' for v in values]
    assert json_column(array, "s").to_pylist() == expected_json
    assert text_cells(array, csv=False) == values


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.one_of(st.none(), st.text(alphabet="ab |-+", max_size=6)), st.one_of(st.none(), FLOATS)),
        max_size=20,
    )
)
def test_table_padding_with_kernels_equals_cell_by_cell(rows: list[tuple[str | None, float | None]]) -> None:
    from tidepool.db.formats import render_table

    batch = _batch(t=pa.array([r[0] for r in rows], pa.string()), f=pa.array([r[1] for r in rows], pa.float64()))
    expected = render_table(
        ["t", "f"], [["" if t is None else t, "" if f is None else format_float_lexical(f)] for t, f in rows]
    )
    assert render_bytes(ResultFormat.TABLE, batch.schema, [batch]).decode() == expected
