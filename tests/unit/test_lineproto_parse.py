"""Line protocol parsing: the spec's examples, every escaping rule, errors with line and column, both paths."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tidepool.lineproto import FieldType, LineProtocolError, parse
from tidepool.lineproto.parse import parse_points

NOW = 1_700_000_000_000_000_000


def rows(body: bytes | str, precision: str = "ns") -> list[dict[str, object]]:
    """Every point as a dict (measurement under `_m`), in body order, via the public parse()."""
    out: list[tuple[int, dict[str, object]]] = []
    for batch in parse(body, precision=precision, now_ns=NOW).measurements.values():
        table = batch.to_table()
        table = table.set_column(0, "time", table.column("time").cast(pa.int64()))
        for row in table.to_pylist():
            row = {k: v for k, v in row.items() if v is not None}
            row["_m"] = batch.name
            out.append((len(out), row))
    return [r for _, r in out]


def types(body: str) -> dict[str, FieldType]:
    batch = next(iter(parse(body, now_ns=NOW).measurements.values()))
    return {key: ftype for key, (ftype, _) in batch.fields.items()}


def test_the_spec_example_with_tags_fields_and_timestamp() -> None:
    assert rows('myMeasurement,tag1=value1,tag2=value2 fieldKey="fieldValue" 1556813561098000000') == [
        {"_m": "myMeasurement", "tag1": "value1", "tag2": "value2", "fieldKey": "fieldValue",
         "time": 1556813561098000000}
    ]  # fmt: skip


def test_each_field_type_is_recognised() -> None:
    body = 'm f=1.5,g=-2,i=3i,neg=-4i,u=5u,s="x",b=true,e=1e3 1'
    assert types(body) == {
        "f": FieldType.FLOAT, "g": FieldType.FLOAT, "i": FieldType.INTEGER, "neg": FieldType.INTEGER,
        "u": FieldType.UNSIGNED, "s": FieldType.STRING, "b": FieldType.BOOLEAN, "e": FieldType.FLOAT,
    }  # fmt: skip
    assert rows(body)[0] | {} == {
        "_m": "m", "f": 1.5, "g": -2.0, "i": 3, "neg": -4, "u": 5, "s": "x", "b": True, "e": 1000.0, "time": 1
    }  # fmt: skip


@pytest.mark.parametrize("spelling", ["t", "T", "true", "True", "TRUE"])
def test_every_spelling_of_true(spelling: str) -> None:
    assert rows(f"m b={spelling} 1")[0]["b"] is True


@pytest.mark.parametrize("spelling", ["f", "F", "false", "False", "FALSE"])
def test_every_spelling_of_false(spelling: str) -> None:
    assert rows(f"m b={spelling} 1")[0]["b"] is False


def test_a_line_without_timestamp_gets_now() -> None:
    assert rows("m v=1")[0]["time"] == NOW


@pytest.mark.parametrize(("precision", "factor"), [("ns", 1), ("us", 1_000), ("ms", 1_000_000), ("s", 10**9)])
def test_precision_scales_timestamps_to_nanoseconds(precision: str, factor: int) -> None:
    assert rows("m v=1 1700000000", precision)[0]["time"] == 1700000000 * factor


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown precision"):
        parse("m v=1 1", precision="fortnights")


def test_blank_lines_comments_and_crlf_are_skipped() -> None:
    body = "# a comment\n\n  \nm v=1 1\r\n# another\nm v=2 2\n"
    assert [r["v"] for r in rows(body)] == [1.0, 2.0]


def test_escaped_comma_and_space_in_measurement() -> None:
    assert rows(r"my\,measure\ ment v=1 1")[0]["_m"] == "my,measure ment"


def test_escaped_comma_equals_and_space_in_tag_keys_and_values() -> None:
    row = rows(r"m,tag\ key\,x\=y=val\ ue\,z\=w v=1 1")[0]
    assert row["tag key,x=y"] == "val ue,z=w"


def test_escaped_characters_in_field_keys() -> None:
    assert rows(r"m field\ key\,x\=y=1 1")[0]["field key,x=y"] == 1.0


def test_string_field_with_escaped_quote_backslash_comma_space_and_equals() -> None:
    row = rows(r'm s="a \"quoted\" \\ value, with = signs" 1')[0]
    assert row["s"] == 'a "quoted" \\ value, with = signs'


def test_newline_inside_a_string_field_belongs_to_the_value() -> None:
    body = 'm s="line one\nline two" 1\nm s="next" 2\n'
    assert [r["s"] for r in rows(body)] == ["line one\nline two", "next"]


def test_backslash_before_an_ordinary_character_is_literal() -> None:
    assert rows(r"m,path=C:\temp v=1 1")[0]["path"] == r"C:\temp"


def test_quotes_in_measurement_and_tags_are_literal() -> None:
    row = rows('"m",t="q" v=1 1')[0]
    assert row["_m"] == '"m"'
    assert row["t"] == '"q"'


def test_measurements_are_split_and_missing_columns_are_null() -> None:
    batch = parse("a,x=1 v=1 1\nb y=2i 2\na z=3 3\n", now_ns=NOW)
    assert list(batch.measurements) == ["a", "b"]
    a = batch.measurements["a"].to_table().drop_columns(["time"]).to_pydict()
    assert a["x"] == ["1", None]
    assert a["v"] == [1.0, None]
    assert a["z"] == [None, 3.0]


def test_bad_lines_are_all_reported_with_line_and_column() -> None:
    body = "m v=1 1\nm v=abc 2\nm v=1 3\nm,t v=1 4\nm v=1 notatime\n"
    with pytest.raises(LineProtocolError) as info:
        parse(body)
    found = [(e.line, e.column) for e in info.value.errors]
    assert found == [(2, 5), (4, 4), (5, 7)]
    assert "invalid field value 'abc'" in info.value.errors[0].message
    assert "expected '=' after tag key 't'" in info.value.errors[1].message
    assert "invalid timestamp" in info.value.errors[2].message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("m", "expected a field set"),
        ("m ", "expected a field"),
        (",t=1 v=1", "expected a measurement name"),
        ("m v= 1", "expected a field value"),
        ("m =1 1", "expected a field key"),
        ("m v 1", "expected '=' after field key"),
        ('m s="open 1', "unterminated string"),
        ("m v=1i1 1", "invalid field value"),
        ("m v=99999999999999999999i 1", "out of range"),
        ("m v=-1u 1", "invalid unsigned"),
        ("m v=1 1 extra", "unexpected text"),
        ("m,t= v=1 1", "expected a value for tag"),
        ("m v=NaN 1", "invalid field value"),
    ],
)
def test_each_kind_of_bad_line_says_what_was_expected(line: str, expected: str) -> None:
    with pytest.raises(LineProtocolError) as info:
        parse(line)
    assert expected in info.value.errors[0].message
    assert info.value.errors[0].line == 1


def test_a_field_with_two_types_in_one_body_is_rejected() -> None:
    with pytest.raises(LineProtocolError) as info:
        parse("m v=1 1\nm v=1i 2\n")
    assert info.value.errors[0].line == 2
    assert "I64 here but F64" in info.value.errors[0].message


def test_invalid_utf8_is_rejected_with_its_position() -> None:
    with pytest.raises(LineProtocolError) as info:
        parse(b"m v=1 1\nm,t=\xff v=1 2\n")
    assert (info.value.errors[0].line, info.value.errors[0].column) == (2, 5)


def _uniform_body(n: int, value: str = "{i}.5") -> str:
    return "\n".join(
        f"cpu,host=h{i % 7},region=eu u={value.format(i=i)},n={i}i,ok=true,cnt={i}u {1000 + i}" for i in range(n)
    )


def test_fast_path_matches_the_general_parser_on_a_uniform_body() -> None:
    body = _uniform_body(2000)
    fast = parse(body, now_ns=NOW).measurements["cpu"].to_table()
    general = parse_points(body, 1, NOW)
    assert fast.num_rows == len(general) == 2000
    assert fast.column("host").to_pylist() == [p[1]["host"] for p in general]
    assert fast.column("u").to_pylist() == [p[2]["u"][1] for p in general]
    assert fast.column("n").to_pylist() == [p[2]["n"][1] for p in general]
    assert fast.column("cnt").to_pylist() == [p[2]["cnt"][1] for p in general]
    assert fast.column("time").cast(pa.int64()).to_pylist() == [p[3] for p in general]


def test_one_bad_value_deep_in_a_uniform_body_is_reported_exactly() -> None:
    lines = _uniform_body(3000).split("\n")
    lines[2500] = lines[2500].replace(",n=2500i", ",n=25x0i")
    with pytest.raises(LineProtocolError) as info:
        parse("\n".join(lines))
    (error,) = info.value.errors
    assert error.line == 2501
    assert error.text == lines[2500]
    assert error.column == lines[2500].index("25x0i") + 1


def test_uniform_body_with_two_measurements_splits_them() -> None:
    body = "\n".join(f"{'a' if i % 3 else 'b'},h=x{i % 5} v={i}.0 {i}" for i in range(3000))
    batch = parse(body, now_ns=NOW)
    assert batch.measurements["a"].num_rows == 2000
    assert batch.measurements["b"].num_rows == 1000
    assert batch.measurements["b"].to_table().column("v").to_pylist()[:2] == [0.0, 3.0]


def test_uniform_body_without_timestamps_uses_now() -> None:
    body = "\n".join(f"m,h=x v={i}.0" for i in range(3000))
    times = parse(body, now_ns=NOW).measurements["m"].time.to_pylist()
    assert set(times) == {NOW}


def test_a_timestamp_that_overflows_when_scaled_to_nanoseconds_is_a_line_error() -> None:
    with pytest.raises(LineProtocolError) as info:
        parse("m v=1 1\nm v=1 9223372036854775\n", precision="s")
    (error,) = info.value.errors
    assert (error.line, error.column) == (2, 7)
    assert "timestamp overflow" in error.message
