"""The vectorized path for the common body: every line `series-key fields [timestamp]` with one field layout.

Series keys (measurement + tags) repeat across a batch, so they are dictionary-encoded and each distinct key is
parsed once in Python; fields are split and cast column by column with Arrow kernels. Any deviation — quotes,
backslashes, comments, a second field layout, a value that does not match its column's type — returns None and the
general parser takes the body (and reports errors with line and column).
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from tidepool.lineproto.types import FieldType, MeasurementBatch, ParsedBatch

_FLOAT_PATTERN = r"^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$"
_INT_PATTERN = r"^-?\d+i$"
_UINT_PATTERN = r"^\d+u$"
_TRUE = ["t", "T", "true", "True", "TRUE"]
_FALSE = ["f", "F", "false", "False", "FALSE"]
_MIN_BODY = 4096  # below this the general path is as fast and the setup cost is not worth it
_FORBIDDEN = (b"\\", b'"', b"\n#", b"\r")


def _field_type(value: str) -> FieldType | None:
    import re

    if re.fullmatch(_INT_PATTERN[1:-1], value):
        return FieldType.INTEGER
    if re.fullmatch(_UINT_PATTERN[1:-1], value):
        return FieldType.UNSIGNED
    if value in _TRUE or value in _FALSE:
        return FieldType.BOOLEAN
    if re.fullmatch(_FLOAT_PATTERN[1:-1], value):
        return FieldType.FLOAT
    return None


def _series_key(key: str) -> tuple[str, dict[str, str]] | None:
    name, *pairs = key.split(",")
    if not name:
        return None
    tags: dict[str, str] = {}
    for pair in pairs:
        tag, eq, value = pair.partition("=")
        if not tag or not eq or not value or "=" in value:
            return None
        tags[tag] = value
    return name, tags


def _cast_field(values: pa.Array, ftype: FieldType) -> pa.Array | None:
    if ftype is FieldType.FLOAT:
        if not pc.all(pc.match_substring_regex(values, _FLOAT_PATTERN)).as_py():
            return None
        casted = values.cast(pa.float64())
        if not pc.all(pc.is_finite(casted)).as_py():
            return None
        return casted
    if ftype is FieldType.BOOLEAN:
        is_true = pc.is_in(values, value_set=pa.array(_TRUE))
        if not pc.all(pc.or_(is_true, pc.is_in(values, value_set=pa.array(_FALSE)))).as_py():
            return None
        return is_true
    pattern = _INT_PATTERN if ftype is FieldType.INTEGER else _UINT_PATTERN
    if not pc.all(pc.match_substring_regex(values, pattern)).as_py():
        return None
    digits = pc.utf8_slice_codeunits(values, 0, -1)
    try:
        return digits.cast(ftype.arrow_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # out of range: let the general path say where
        return None


def parse_uniform(raw: bytes, factor: int, now_ns: int) -> ParsedBatch | None:
    """Parse `raw` if it has the uniform shape, else None (never raises on bad input)."""
    if len(raw) < _MIN_BODY or raw[:1] in b" \t#" or any(bad in raw for bad in _FORBIDDEN):
        return None
    first_end = raw.find(b"\n")
    first = (raw if first_end < 0 else raw[:first_end]).decode("utf-8", "replace")
    parts = first.split(" ")
    if len(parts) not in (2, 3):
        return None
    layout: list[tuple[str, FieldType]] = []
    for pair in parts[1].split(","):
        key, eq, value = pair.partition("=")
        ftype = _field_type(value)
        if not key or not eq or ftype is None or ftype is FieldType.STRING:
            return None
        layout.append((key, ftype))
    if len({key for key, _ in layout}) != len(layout):
        return None
    has_time = len(parts) == 3
    names = ["key", "fields", "time"] if has_time else ["key", "fields"]
    types = {"key": pa.string(), "fields": pa.string(), "time": pa.int64()}
    try:
        table = pacsv.read_csv(
            io.BytesIO(raw),
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 22),
            parse_options=pacsv.ParseOptions(delimiter=" ", quote_char=False, double_quote=False),
            convert_options=pacsv.ConvertOptions(
                column_types={n: types[n] for n in names}, null_values=[], strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    rows = table.num_rows
    if rows == 0:
        return None

    if has_time:
        time_col = table.column("time").combine_chunks()
        if time_col.null_count:
            return None
        if factor != 1:
            try:
                time_col = pc.multiply_checked(time_col, pa.scalar(factor, pa.int64()))
            except pa.ArrowInvalid:
                return None
    else:
        time_col = pa.repeat(pa.scalar(now_ns, pa.int64()), rows)

    field_text = table.column("fields").combine_chunks()
    split = pc.split_pattern(field_text, ",")
    width = len(layout)
    if not pc.all(pc.equal(pc.list_value_length(split), width)).as_py():
        return None
    fields: dict[str, tuple[FieldType, pa.Array]] = {}
    for position, (key, ftype) in enumerate(layout):
        items = pc.list_element(split, position)
        prefix = key + "="
        if not pc.all(pc.starts_with(items, prefix)).as_py():
            return None
        casted = _cast_field(pc.utf8_slice_codeunits(items, len(prefix)), ftype)
        if casted is None:
            return None
        fields[key] = (ftype, casted)

    keys = table.column("key").combine_chunks().dictionary_encode()
    parsed_keys = []
    for key in keys.dictionary.to_pylist():
        parsed = _series_key(key)
        if parsed is None:
            return None
        parsed_keys.append(parsed)
    measurement_of_key = [name for name, _ in parsed_keys]
    measurements: dict[str, MeasurementBatch] = {}
    distinct = list(dict.fromkeys(measurement_of_key))
    for name in distinct:
        key_ids = [i for i, m in enumerate(measurement_of_key) if m == name]
        if len(distinct) == 1:
            indices = keys.indices
            m_time, m_fields = time_col, fields
        else:
            mask = pc.is_in(keys.indices, value_set=pa.array(key_ids, keys.indices.type))
            indices = keys.indices.filter(mask)
            m_time = time_col.filter(mask)
            m_fields = {k: (t, a.filter(mask)) for k, (t, a) in fields.items()}
        tag_keys = list(dict.fromkeys(tag for i in key_ids for tag in parsed_keys[i][1]))
        tags: dict[str, pa.Array] = {}
        for tag in tag_keys:
            per_key = pa.array([parsed[1].get(tag) for parsed in parsed_keys], pa.string())
            tags[tag] = per_key.take(indices)
        measurements[name] = MeasurementBatch(name=name, time=m_time, tags=tags, fields=m_fields)
    return ParsedBatch(measurements, rows)
