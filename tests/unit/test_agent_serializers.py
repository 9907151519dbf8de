"""The influx serializer writes what Telegraf's writes (telegraf.md §3); the json serializer Telegraf's shape."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tidepool.agent.plugins.serializers.influx import InfluxSerializer
from tidepool.agent.plugins.serializers.json import JSONSerializer, go_json_float
from tidepool.lineproto import Metric, SerializeError, serialize_metric

T = 1_700_000_000_123_456_789


def test_tutorial_metric_is_written_as_telegraf_would() -> None:
    metric = Metric("kafka_consumer", {"host": "vm"}, {"pressure": 5.0, "temperature": 42.5, "visibility": 0.1}, T)
    assert InfluxSerializer().serialize(metric) == (
        b"kafka_consumer,host=vm pressure=5,temperature=42.5,visibility=0.1 1700000000123456789\n"
    )


def test_escaping_sorting_and_special_values() -> None:
    metric = Metric(
        "we ir,d\tm",
        {"z": "1", "a b": "c,d=e", "empty": "", "trail\\": "x\\"},
        {"f=1": 1e21, "s": 'say "hi"\\\n', "i": -3, "nan": float("nan"), "inf": float("inf"), "b": False},
        T,
    )
    assert InfluxSerializer().serialize(metric) == (
        b'we\\ ir\\,d\\tm,a\\ b=c\\,d\\=e,trail=x,z=1 f\\=1=1000000000000000000000,s="say \\"hi\\"\\\\\n",i=-3i,'
        b"b=false 1700000000123456789\n"
    )


def test_uint_support_and_clipping() -> None:
    metric = Metric("m", {}, {"u": 2**64 - 1}, T, frozenset({"u"}))
    assert InfluxSerializer().serialize(metric) == b"m u=9223372036854775807i 1700000000123456789\n"
    assert InfluxSerializer(uint_support=True).serialize(metric) == b"m u=18446744073709551615u 1700000000123456789\n"


def test_sort_fields_and_omit_timestamp() -> None:
    metric = Metric("m", {}, {"b": 1.0, "a": 2.0}, T)
    assert InfluxSerializer(sort_fields=True, omit_timestamp=True).serialize(metric) == b"m a=2,b=1\n"


def test_batch_skips_metrics_without_serializable_fields() -> None:
    good = Metric("m", {}, {"a": 1.0}, 1)
    empty = Metric("m", {}, {"nan": float("nan")}, 2)
    nameless = Metric("", {}, {"a": 1.0}, 3)
    assert InfluxSerializer().serialize_batch([good, empty, nameless, good]) == b"m a=1 1\nm a=1 1\n"
    try:
        InfluxSerializer().serialize(empty)
    except SerializeError as exc:
        assert str(exc) == "no serializable fields"
    else:
        raise AssertionError("a metric without fields must not serialize")


def test_max_line_bytes_splits_fields_over_lines_with_the_same_header() -> None:
    metric = Metric("m", {"t": "v"}, {"aaaa": 1.0, "bbbb": 2.0, "cccc": 3.0}, 5)
    body = InfluxSerializer(max_line_bytes=20).serialize(metric)
    lines = body.decode().splitlines()
    assert len(lines) > 1 and all(line.startswith("m,t=v ") and line.endswith(" 5") for line in lines)


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
_value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    _text,
)


@settings(max_examples=300, deadline=None)
@given(
    name=_text,
    tags=st.dictionaries(_text, _text, max_size=4),
    # field keys ending in a backslash are where lineproto and Telegraf part ways (tested below)
    fields=st.dictionaries(_text.filter(lambda k: not k.endswith("\\")), _value, max_size=5),
    time=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    sort=st.booleans(),
)
def test_fast_path_writes_exactly_what_lineproto_writes(
    name: str, tags: dict[str, str], fields: dict[str, object], time: int, sort: bool
) -> None:
    metric = Metric(name, tags, fields, time)  # type: ignore[arg-type]
    try:
        expected: bytes | str = serialize_metric(metric, sort_fields=sort)
    except SerializeError as exc:
        expected = str(exc)
    serializer = InfluxSerializer(sort_fields=sort)
    for _ in range(2):  # second round goes through the header cache
        try:
            got: bytes | str = serializer.serialize(metric)
        except SerializeError as exc:
            got = str(exc)
        assert got == expected


def test_field_key_keeps_its_trailing_backslash_as_in_telegraf() -> None:
    metric = Metric("m", {"t\\": "v\\"}, {"f\\": 1.0, "g": 2.0}, 1)
    assert InfluxSerializer().serialize(metric) == b"m,t=v f\\=1,g=2 1\n"


def test_max_line_bytes_follows_telegrafs_accounting() -> None:
    # Telegraf's own cases: 2 int fields, time 1519194109000000042; 33 and 34 bytes split, 32 cannot fit a field
    metric = Metric("cpu", {}, {"abc": 123, "def": 456}, 1519194109000000042)
    split = b"cpu abc=123i 1519194109000000042\ncpu def=456i 1519194109000000042\n"
    assert InfluxSerializer(max_line_bytes=33).serialize(metric) == split
    assert InfluxSerializer(max_line_bytes=34).serialize(metric) == split
    assert InfluxSerializer(max_line_bytes=45).serialize(metric) == b"cpu abc=123i,def=456i 1519194109000000042\n"
    try:
        InfluxSerializer(max_line_bytes=32).serialize(metric)
    except SerializeError as exc:
        assert str(exc) == "need more space"
    else:
        raise AssertionError("a field that cannot fit must fail the metric")
    other = Metric("cpu", {}, {"x": 1.0}, 7)
    assert InfluxSerializer(max_line_bytes=32).serialize_batch([metric, other]) == b"cpu x=1 7\n"


def test_json_serializer_shape() -> None:
    metric = Metric("kafka_consumer", {"host": "vm"}, {"pressure": 5.0, "n": 3, "s": "x"}, T)
    line = JSONSerializer().serialize(metric)
    assert line == (
        b'{"fields":{"n":3,"pressure":5,"s":"x"},"name":"kafka_consumer","tags":{"host":"vm"},"timestamp":1700000000}\n'
    )
    batch = orjson.loads(JSONSerializer(timestamp_units_ns=1_000_000).serialize_batch([metric, metric]))
    assert [m["timestamp"] for m in batch["metrics"]] == [1_700_000_000_123, 1_700_000_000_123]


def test_go_json_float_formatting() -> None:
    assert [go_json_float(v) for v in (5.0, 0.1, 1e21, 1.5e-7, -2.5e22, 123456.789, 1e-10, 1e100)] == [
        "5", "0.1", "1e+21", "1.5e-7", "-2.5e+22", "123456.789", "1e-10", "1e+100",
    ]  # fmt: skip
