"""Telegraf's JSON v1, influx and value parsers as the agent uses them on Kafka payloads."""

from __future__ import annotations

import datetime as dt

import pytest

from tidepool.agent.plugins import ParseError
from tidepool.agent.plugins.parsers.influx import InfluxParser
from tidepool.agent.plugins.parsers.json import JSONParser
from tidepool.agent.plugins.parsers.value import ValueParser
from tidepool.agent.timeparse import parse_timestamp


def test_tutorial_message_gives_one_float_metric_named_after_the_input() -> None:
    (metric,) = JSONParser("kafka_consumer").parse(b'{"pressure": 5, "temperature": 42.5, "visibility": 0.1}')
    assert metric.name == "kafka_consumer"
    assert metric.tags == {}
    assert metric.fields == {"pressure": 5.0, "temperature": 42.5, "visibility": 0.1}
    assert all(type(v) is float for v in metric.fields.values())


def test_nesting_is_flattened_with_underscores_and_strings_bools_nulls_are_dropped() -> None:
    payload = b'{"a": {"b": 1, "c": [2, {"d": 3}]}, "s": "x", "ok": true, "n": null}'
    (metric,) = JSONParser("m").parse(payload)
    assert metric.fields == {"a_b": 1.0, "a_c_0": 2.0, "a_c_1_d": 3.0}


def test_tag_keys_and_string_fields_follow_telegraf() -> None:
    parser = JSONParser("m", tag_keys=["site", "id*", "flag"], string_fields=["note"])
    (metric,) = parser.parse(b'{"site": "north", "id_num": 44, "flag": true, "note": "hi", "other": "x", "v": 1}')
    assert metric.tags == {"site": "north", "id_num": "44", "flag": "true"}
    assert metric.fields == {"note": "hi", "v": 1.0}


def test_name_key_and_time_key() -> None:
    parser = JSONParser("m", name_key="kind", time_key="ts", time_format="unix_ms")
    (metric,) = parser.parse(b'{"kind": "buoy", "ts": 1700000000123, "v": 2}')
    assert (metric.name, metric.time, metric.fields) == ("buoy", 1_700_000_000_123_000_000, {"v": 2.0})


def test_integer_unix_ns_time_key_is_exact() -> None:
    parser = JSONParser("m", tag_keys=["station_id"], time_key="time", time_format="unix_ns")
    first, second = (
        parser.parse(b'{"station_id": "s1", "time": %d, "v": 1}' % t)[0]
        for t in (1_795_610_000_123_456_789, 1_795_610_000_123_456_790)
    )
    assert (first.time, second.time) == (1_795_610_000_123_456_789, 1_795_610_000_123_456_790)
    assert first.tags == {"station_id": "s1"} and "time" not in first.fields


def test_time_key_errors_match_telegraf() -> None:
    with pytest.raises(ParseError, match="use of 'json_time_key' requires 'json_time_format'"):
        JSONParser("m", time_key="ts").parse(b'{"ts": 1, "v": 1}')
    with pytest.raises(ParseError, match="'json_time_key' could not be found"):
        JSONParser("m", time_key="ts", time_format="unix").parse(b'{"v": 1}')


def test_arrays_of_objects_and_strictness() -> None:
    assert [m.fields for m in JSONParser("m").parse(b'[{"a": 1}, {"a": 2}]')] == [{"a": 1.0}, {"a": 2.0}]
    for strict in (True, False):  # a non-object element fails the payload either way, as in Telegraf
        with pytest.raises(ParseError, match="must be an object or an array of objects"):
            JSONParser("m", strict=strict).parse(b'[{"a": 1}, 3]')
    timed = b'[{"t": 5, "a": 1}, {"a": 2}]'  # the second object lacks json_time_key
    with pytest.raises(ParseError, match="'json_time_key' could not be found"):
        JSONParser("m", time_key="t", time_format="unix").parse(timed)
    lenient = JSONParser("m", time_key="t", time_format="unix", strict=False).parse(timed)
    assert [(m.fields, m.time) for m in lenient] == [({"a": 1.0}, 5_000_000_000)]
    metrics = JSONParser("m").parse(b'[{"a": 1}, {"a": 2}]')
    assert metrics[0].time == metrics[1].time


@pytest.mark.parametrize("payload", [b"[]", b"null", b"", b"  \n", b"\xef\xbb\xbf  "])
def test_empty_payloads_give_no_metrics(payload: bytes) -> None:
    assert JSONParser("m").parse(payload) == []


@pytest.mark.parametrize("payload", [b"{not json", b"42", b'"text"', b"true", b'{"a": 1'])
def test_bad_or_non_object_json_is_a_parse_error(payload: bytes) -> None:
    with pytest.raises(ParseError):
        JSONParser("m").parse(payload)


def test_integers_beyond_64_bits_are_floats_as_in_go() -> None:
    (metric,) = JSONParser("m").parse(b'{"a": 123456789012345678901234567890, "b": 1}')
    assert metric.fields == {"a": 1.2345678901234568e29, "b": 1.0}
    with pytest.raises(ParseError):
        JSONParser("m").parse(b'{"a": NaN}')


def test_bom_and_whitespace_are_trimmed() -> None:
    (metric,) = JSONParser("m").parse(b'\xef\xbb\xbf {"a": 1}\n')
    assert metric.fields == {"a": 1.0}


def test_json_query_selects_a_sub_document() -> None:
    metrics = JSONParser("m", query="data.items").parse(b'{"data": {"items": [{"a": 1}, {"a": 2}]}}')
    assert [m.fields for m in metrics] == [{"a": 1.0}, {"a": 2.0}]
    assert JSONParser("m", query="data.items.1").parse(b'{"data": {"items": [{"a": 1}, {"a": 2}]}}')[0].fields == {
        "a": 2.0
    }
    assert JSONParser("m", query="data.nothing").parse(b'{"data": {}}') == []
    with pytest.raises(ParseError, match="must lead to a JSON object, array of objects or null, but lead to: Number"):
        JSONParser("m", query="data.n").parse(b'{"data": {"n": 3}}')


@pytest.mark.parametrize(
    ("fmt", "value", "expected_ns"),
    [
        ("unix", 1700000000, 1_700_000_000_000_000_000),
        ("unix", "1700000000.5", 1_700_000_000_500_000_000),
        ("unix", "1700000000,25", 1_700_000_000_250_000_000),
        ("unix_ms", 1700000000123, 1_700_000_000_123_000_000),
        ("unix_us", "1700000000123456", 1_700_000_000_123_456_000),
        ("unix_ns", 1700000000123456789, 1_700_000_000_123_456_789),
        ("rfc3339", "2023-11-14T22:13:20Z", 1_700_000_000_000_000_000),
        ("RFC3339Nano", "2023-11-14T22:13:20.5+01:00", 1_699_996_400_500_000_000),
        ("2006-01-02 15:04:05", "2023-11-14 22:13:20", 1_700_000_000_000_000_000),
        ("01/02/2006 15:04:05.000", "11/14/2023 22:13:20.250", 1_700_000_000_250_000_000),
        ("Jan 2 2006 3:04PM MST", "Nov 14 2023 3:13PM MST", 1_699_999_980_000_000_000),
    ],
)
def test_timestamp_formats(fmt: str, value: object, expected_ns: int) -> None:
    assert parse_timestamp(fmt, value) == expected_ns


def test_layout_without_offset_uses_json_timezone() -> None:
    utc = parse_timestamp("2006-01-02 15:04:05", "2023-07-01 12:00:00")
    berlin = parse_timestamp("2006-01-02 15:04:05", "2023-07-01 12:00:00", "Europe/Berlin")
    assert utc - berlin == 2 * 3600 * 10**9


def test_layout_without_year_uses_this_year() -> None:
    ns = parse_timestamp("stamp", "Jan  2 15:04:05")
    assert dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).year == dt.datetime.now(dt.UTC).year


def test_influx_parser_keeps_types_and_unsigned() -> None:
    (metric,) = InfluxParser().parse(b'cpu,host=a usage=1.5,count=3i,big=7u,on=true,msg="x" 1700000000000000000\n')
    assert metric.name == "cpu" and metric.tags == {"host": "a"}
    assert metric.fields == {"usage": 1.5, "count": 3, "big": 7, "on": True, "msg": "x"}
    assert metric.unsigned == {"big"} and metric.time == 1_700_000_000_000_000_000
    with pytest.raises(ParseError):
        InfluxParser().parse(b"cpu usage=\n")


def test_influx_parser_takes_lines_with_different_field_types_as_telegraf() -> None:
    body = b'm f=1 1\nm f="x" 2\nm s="a\nb",g=true 3\n'
    assert [(m.fields, m.time) for m in InfluxParser().parse(body)] == [
        ({"f": 1.0}, 1), ({"f": "x"}, 2), ({"s": "a\nb", "g": True}, 3),
    ]  # fmt: skip
    with pytest.raises(ParseError):
        InfluxParser().parse(b'm f=1 1\nm f="x" 2\nm f= 3\n')  # a bad line still refuses the body


def _value_parser(data_type: str | None = None, field: str | None = None) -> ValueParser:
    from tidepool.agent.options import PluginOptions
    from tidepool.agent.plugins.parsers.value import make_value_parser

    table: dict[str, object] = {}
    if data_type is not None:
        table["data_type"] = data_type
    if field is not None:
        table["value_field_name"] = field
    return make_value_parser(PluginOptions(table, "inputs.x"), "m")


def test_value_parser_types_as_telegraf() -> None:
    assert _value_parser().parse(b" 1 2 42\n")[0].fields == {"value": 42}  # the default type is int
    assert _value_parser("integer").parse(b"-7")[0].fields == {"value": -7}
    assert _value_parser("long", "v").parse(b"3.5")[0].fields == {"v": 3.5}  # long means float
    assert _value_parser("string").parse(b" a b \x00")[0].fields == {"value": "a b"}
    assert _value_parser("boolean").parse(b"T")[0].fields == {"value": True}
    assert _value_parser("auto_integer").parse(b"4.5")[0].fields == {"value": "4.5"}
    assert _value_parser("auto_float").parse(b"4.5")[0].fields == {"value": 4.5}
    assert _value_parser("base64").parse(b"hi")[0].fields == {"value": "aGk="}
    assert _value_parser("float").parse(b"   ") == []
    for data_type, payload in (("int", b"x1"), ("int", b"1_000"), ("int", b"9223372036854775808"), ("float", b"1e400")):
        with pytest.raises(ParseError):
            _value_parser(data_type).parse(payload)
