"""Query results as CnosDB renders them over HTTP: CSV, TSV, JSON, ND-JSON and the ASCII table.

CnosDB (main/src/http/result_format.rs) hands Arrow record batches to arrow-rs 42 writers: the CSV writer
(`%FT%H:%M:%S.%9f` timestamps, empty cells for nulls, RFC 4180 quoting only where needed), the JSON
`ArrayWriter`/`LineDelimitedWriter` (serde_json values, null fields left out) and `pretty_format_batches`
(comfy-table). Numbers print as those libraries print them: floats in shortest round-trip form, `1.0` for an
integral float, scientific notation outside lexical's exponent range (CSV/table) or ryu's (JSON).

Pure functions over pyarrow data; no I/O. `Renderer` works batch by batch so large results stream; only the
table format must see every row before it can print (column widths), as in CnosDB.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tidepool.db.errors import DbError

BAD_REQUEST = 400


class ResultFormat(enum.Enum):
    """The output formats of `POST /api/v1/sql`, chosen by the `Accept` header."""

    CSV = "csv"
    TSV = "tsv"
    JSON = "json"
    NDJSON = "nd-json"
    TABLE = "table"

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self]


_CONTENT_TYPES = {
    ResultFormat.CSV: "text/csv",
    ResultFormat.TSV: "text/tsv",
    ResultFormat.JSON: "application/json",
    ResultFormat.NDJSON: "application/nd-json",
    ResultFormat.TABLE: "text/table",
}


def invalid_header(reason: str) -> DbError:
    """CnosDB's `InvalidHeader` (040005), answered with 400."""
    return DbError("040005", f"Invalid header: {reason}", BAD_REQUEST)


def format_from_accept(accept: str | None) -> ResultFormat:
    """The format for an `Accept` value, matched exactly as CnosDB does (no lists, no parameters).

    Missing, `*/*` and `application/*` mean CSV; otherwise an `application/` or `text/` prefix is stripped and
    the rest named case-insensitively. CnosDB wraps the reason twice ("Invalid header: Invalid header: ...").
    """
    if accept is None or accept in ("", "*/*", "application/*"):
        return ResultFormat.CSV
    for prefix in ("application/", "text/"):
        if accept.startswith(prefix):
            name = accept[len(prefix) :]
            for fmt in ResultFormat:
                if fmt.value == name.lower():
                    return fmt
            raise invalid_header(f"Invalid header: invalid variant: {name}")
    raise invalid_header(f"Invalid header: accept type not support: {accept}")


# --- numbers -------------------------------------------------------------------------------------------------


def _shortest(value: float) -> tuple[str, str, int]:
    """(sign, significant digits, decimal exponent of the first digit) of the shortest round-trip form."""
    text = repr(value)
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    point = len(whole) + exponent  # digits before the decimal point, counting from the first written digit
    point -= len(whole + frac) - len((whole + frac).lstrip("0"))
    digits = digits.rstrip("0") or "0"
    return sign, digits, point - 1


def format_float_lexical(value: float) -> str:
    """A double as arrow-rs prints it in CSV and tables (lexical-core: scientific below 1e-5 or from 1e10)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    if value == 0.0:
        return "-0.0" if repr(value)[0] == "-" else "0.0"
    text = repr(value)
    if "e" not in text and 1e-4 <= abs(value) < 1e10:
        return text  # Python's repr already is "123.456" / "1.0" in this range
    sign, digits, sci_exp = _shortest(value)
    if sci_exp < -5 or sci_exp > 9:
        mantissa = digits[0] + "." + (digits[1:] or "0")
        return f"{sign}{mantissa}e{sci_exp}"
    if sci_exp < 0:
        return f"{sign}0.{'0' * (-sci_exp - 1)}{digits}"
    if len(digits) <= sci_exp + 1:
        return f"{sign}{digits}{'0' * (sci_exp + 1 - len(digits))}.0"
    return f"{sign}{digits[: sci_exp + 1]}.{digits[sci_exp + 1 :]}"


def format_float_ryu(value: float) -> str:
    """A finite double as serde_json (ryu) writes it: `1.0`, `0.001`, `1e16`, `1.5e-7`."""
    if value == 0.0:
        return "-0.0" if repr(value)[0] == "-" else "0.0"
    sign, digits, sci_exp = _shortest(value)
    length = len(digits)
    kk = sci_exp + 1  # position of the decimal point relative to the first digit
    k = kk - length
    if k >= 0 and kk <= 16:
        return f"{sign}{digits}{'0' * k}.0"
    if 0 < kk <= 16:
        return f"{sign}{digits[:kk]}.{digits[kk:]}"
    if -5 < kk <= 0:
        return f"{sign}0.{'0' * (-kk)}{digits}"
    if length == 1:
        return f"{sign}{digits}e{kk - 1}"
    return f"{sign}{digits[0]}.{digits[1:]}e{kk - 1}"


# --- column → text -------------------------------------------------------------------------------------------

Cells = list[str | None]


def _decode(array: pa.Array) -> pa.Array:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array


def _timestamps_9(array: pa.Array) -> pa.Array:
    """`%FT%H:%M:%S.%9f` (plus `%:z` with a zone) for any timestamp unit."""
    unit_tz = array.type.tz
    as_ns = array.cast(pa.timestamp("ns", unit_tz))
    if unit_tz is None:
        return pc.strftime(as_ns, format="%Y-%m-%dT%H:%M:%S")
    text = pc.strftime(as_ns.cast(pa.timestamp("ns", "UTC")), format="%Y-%m-%dT%H:%M:%S")
    return pc.binary_join_element_wise(text, pa.scalar("+00:00"), "")


def _timestamps_debug(array: pa.Array) -> pa.Array:
    """chrono's `NaiveDateTime` Debug form: fraction only when non-zero, in 3, 6 or 9 digits."""
    text = pc.strftime(array.cast(pa.timestamp("ns", array.type.tz)), format="%Y-%m-%dT%H:%M:%S")
    text = pc.replace_substring_regex(text, r"\.000000000$", "")
    text = pc.replace_substring_regex(text, r"(\.\d{3})000000$", r"\1")
    text = pc.replace_substring_regex(text, r"(\.\d{6})000$", r"\1")
    if array.type.tz is not None:
        text = pc.binary_join_element_wise(text, pa.scalar("Z"), "")
    return text


def _float_cells(array: pa.Array) -> Cells:
    return [None if v is None else format_float_lexical(v) for v in array.to_pylist()]


def _display_nested(value: Any, type_: pa.DataType) -> str:
    """arrow-rs display of list and struct values: `[1, 2]`, `{start: ..., end: ...}`."""
    if value is None:
        return ""
    if pa.types.is_struct(type_):
        parts = [f"{field.name}: {_display_nested(value.get(field.name), field.type)}" for field in type_]
        return "{" + ", ".join(parts) + "}"
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return "[" + ", ".join(_display_nested(v, type_.value_type) for v in value) + "]"
    if isinstance(value, float):
        return format_float_lexical(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _nested_pylist(array: pa.Array) -> list[Any]:
    """Python values of a nested column, with timestamps as their display strings (pyarrow can't give ns)."""
    if pa.types.is_struct(array.type):
        children = {array.type.field(i).name: _nested_pylist(array.field(i)) for i in range(array.type.num_fields)}
        valid = array.is_valid().to_pylist()
        return [
            {name: values[row] for name, values in children.items()} if valid[row] else None
            for row in range(len(array))
        ]
    if pa.types.is_timestamp(array.type):
        return _timestamps_debug(array).to_pylist()
    return array.to_pylist()


def _generic_text(array: pa.Array) -> Cells:
    """Arrow's cast to string where it has one (dates, decimals, ...), else Python's str of each value."""
    try:
        return pc.cast(array, pa.string()).to_pylist()
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return [None if v is None else str(v) for v in array.to_pylist()]


def text_cells(array: pa.Array, *, csv: bool) -> Cells:
    """Each value of a column as text (None for null): the CSV writer's form if `csv`, else the display form."""
    array = _decode(array)
    type_ = array.type
    if pa.types.is_floating(type_):
        return _float_cells(array)
    if pa.types.is_timestamp(type_):
        return (_timestamps_9(array) if csv else _timestamps_debug(array)).to_pylist()
    if pa.types.is_time(type_) and csv:
        return pc.strftime(array.cast(pa.time64("ns")).cast(pa.timestamp("ns")), format="%H:%M:%S").to_pylist()
    if pa.types.is_struct(type_) or pa.types.is_list(type_) or pa.types.is_large_list(type_):
        if csv:
            raise DbError("040007", f"Fetch result: Csv error: Nested type {type_} is not supported in CSV")
        return [None if v is None else _display_nested(v, type_) for v in _nested_pylist(array)]
    if pa.types.is_binary(type_) or pa.types.is_large_binary(type_):
        if csv:
            raise DbError("040007", "Fetch result: Csv error: Binary data cannot be written to CSV")
        return [None if v is None else v.hex() for v in array.to_pylist()]
    if pa.types.is_null(type_):
        return [None] * len(array)
    return _generic_text(array)


# --- JSON ----------------------------------------------------------------------------------------------------


def _json_of(value: Any) -> str | None:
    """serde_json text of one Python value (nested structs/lists), None if it is left out."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float_ryu(value) if value - value == 0.0 else None
    if isinstance(value, dict):
        parts = [orjson.dumps(str(k)).decode() + ":" + text for k, v in value.items() if (text := _json_of(v))]
        return "{" + ",".join(parts) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json_of(v) or "null" for v in value) + "]"
    return orjson.dumps(str(value)).decode()


def json_cells(array: pa.Array) -> Cells:
    """Each value of a column as JSON text, or None where arrow-rs leaves the key out (null, NaN, ±inf)."""
    array = _decode(array)
    type_ = array.type
    if pa.types.is_floating(type_):
        return [None if v is None or v - v != 0.0 else format_float_ryu(v) for v in array.to_pylist()]
    if pa.types.is_integer(type_):
        return pc.cast(array, pa.string()).to_pylist()
    if pa.types.is_boolean(type_):
        return pc.cast(array, pa.string()).to_pylist()
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return [None if v is None else orjson.dumps(v).decode() for v in array.to_pylist()]
    if pa.types.is_timestamp(type_):
        return [None if v is None else '"' + v + '"' for v in _timestamps_debug(array).to_pylist()]
    if pa.types.is_struct(type_) or pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return [_json_of(v) for v in _nested_pylist(array)]
    return [None if v is None else orjson.dumps(v).decode() for v in _generic_text(array)]


# --- vectorized columns ---------------------------------------------------------------------------------------
# The renderers below work a column at a time with Arrow compute kernels; values the fast paths cannot prove right
# (floats far from 1, odd types) go through the per-value functions above.

_LEXICAL_PLAIN = r"^-?(?:[1-9][0-9]{0,9}(?:\.[0-9]+)?|0\.0{0,4}[1-9][0-9]*)$"
_RYU_PLAIN = r"^-?(?:[1-9][0-9]{0,15}(?:\.[0-9]+)?|0\.0{0,4}[1-9][0-9]*)$"


def _floats_text(array: pa.Array, plain: str, slow: Callable[[float], str | None]) -> pa.Array:
    """Arrow's shortest round-trip text where it already is what lexical/ryu print (plus `.0` for integers);
    the remaining values through `slow`."""
    array = array.cast(pa.float64())
    text = pc.cast(array, pa.string())
    integral = pc.match_substring_regex(text, r"^-?[0-9]+$")
    text = pc.if_else(integral, pc.binary_join_element_wise(text, pa.scalar(".0"), ""), text)
    ok = pc.or_(pc.match_substring_regex(text, plain), pc.match_substring_regex(text, r"^-?0\.0$"))
    ok = pc.fill_null(ok, True)
    if pc.all(ok).as_py():
        return text
    values = text.to_pylist()
    floats = array.to_pylist()
    for i in pc.indices_nonzero(pc.invert(ok)).to_pylist():
        values[i] = slow(floats[i])
    return pa.array(values, pa.string())


def _ryu_or_none(value: float) -> str | None:
    return format_float_ryu(value) if value - value == 0.0 else None


def csv_column(array: pa.Array, delimiter: str) -> pa.Array:
    """A column as CSV fields (nulls as empty strings), quoted where the csv crate would quote them."""
    array = _decode(array)
    if pa.types.is_floating(array.type):
        text = _floats_text(array, _LEXICAL_PLAIN, format_float_lexical)
    elif pa.types.is_integer(array.type) or pa.types.is_boolean(array.type):
        text = pc.cast(array, pa.string())
    elif pa.types.is_timestamp(array.type):
        text = _timestamps_9(array)
    elif pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        text = array.cast(pa.string())
        needs = pc.fill_null(pc.match_substring_regex(text, "[" + re.escape(delimiter) + '"\n\r]'), False)
        if pc.any(needs).as_py():
            quoted = pc.binary_join_element_wise(
                pa.scalar('"'), pc.replace_substring(text, '"', '""'), pa.scalar('"'), ""
            )
            text = pc.if_else(needs, quoted, text)
    else:
        text = pa.array(text_cells(array, csv=True), pa.string())
    return pc.fill_null(text, "")


def json_column(array: pa.Array, name: str) -> pa.Array:
    """A column as `"name":value,` fragments, empty where arrow-rs leaves the key out."""
    array = _decode(array)
    type_ = array.type
    if pa.types.is_floating(type_):
        value = _floats_text(array, _RYU_PLAIN, _ryu_or_none)
    elif pa.types.is_integer(type_) or pa.types.is_boolean(type_):
        value = pc.cast(array, pa.string())
    elif pa.types.is_timestamp(type_):
        value = pc.binary_join_element_wise(pa.scalar('"'), _timestamps_debug(array), pa.scalar('"'), "")
    elif pa.types.is_string(type_) or pa.types.is_large_string(type_):
        text = array.cast(pa.string())
        plain = pc.fill_null(pc.invert(pc.match_substring_regex(text, r'["\\\x00-\x1f]')), True)
        value = pc.binary_join_element_wise(pa.scalar('"'), text, pa.scalar('"'), "")
        if not pc.all(plain).as_py():
            escaped = [None if v is None else orjson.dumps(v).decode() for v in text.to_pylist()]
            value = pc.if_else(plain, value, pa.array(escaped, pa.string()))
    else:
        value = pa.array(json_cells(array), pa.string())
    key = orjson.dumps(name).decode() + ":"
    return pc.fill_null(pc.binary_join_element_wise(pa.scalar(key), value, pa.scalar(","), ""), "")


def _concat(strings: pa.Array) -> bytes:
    """All values of a string array, back to back."""
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(strings)], pa.int32()), strings), "")[0]
    return bytes(joined.as_buffer()) if joined.is_valid else b""


# --- CSV quoting ---------------------------------------------------------------------------------------------


def _csv_field(text: str, delimiter: str) -> str:
    """The Rust csv crate's `QuoteStyle::Necessary`: quote when the field holds the delimiter, a quote or a
    line break; double inner quotes."""
    if delimiter in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_record(fields: list[str], delimiter: str) -> str:
    if len(fields) == 1 and fields[0] == "":
        return '""\n'  # a lone empty field is written quoted, or the record would vanish
    return delimiter.join(_csv_field(f, delimiter) for f in fields) + "\n"


# --- table ---------------------------------------------------------------------------------------------------


def _display_width(text: str) -> int:
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def render_table(names: list[str], rows: list[list[str]]) -> str:
    """comfy-table with arrow-rs's preset: `+---+` rules, `| a |` rows, left-aligned, no trailing newline."""
    header_lines = [name.split("\n") for name in names]
    row_lines = [[cell.split("\n") for cell in row] for row in rows]
    widths = [max((_display_width(line) for line in lines), default=0) for lines in header_lines]
    for row in row_lines:
        for i, lines in enumerate(row):
            widths[i] = max(widths[i], *(_display_width(line) for line in lines))
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def physical(cells: list[list[str]]) -> list[str]:
        height = max((len(c) for c in cells), default=1)
        out = []
        for n in range(height):
            parts = []
            for i, lines in enumerate(cells):
                text = lines[n] if n < len(lines) else ""
                parts.append(" " + text + " " * (widths[i] - _display_width(text)) + " ")
            out.append("|" + "|".join(parts) + "|")
        return out

    out = [rule, *physical(header_lines), rule]
    for row in row_lines:
        out.extend(physical(row))
    out.append(rule)
    return "\n".join(out)


def display_column(array: pa.Array) -> pa.Array:
    """A column as arrow-rs displays it in tables (nulls as empty strings)."""
    array = _decode(array)
    if pa.types.is_floating(array.type):
        return pc.fill_null(_floats_text(array, _LEXICAL_PLAIN, format_float_lexical), "")
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return pc.fill_null(array.cast(pa.string()), "")
    return pc.fill_null(pa.array(text_cells(array, csv=False), pa.string()), "")


def render_table_columns(names: list[str], columns: list[pa.Array]) -> bytes:
    """`render_table` over string columns; plain ASCII without line breaks is padded with Arrow kernels."""
    simple = all(name.isascii() and "\n" not in name for name in names) and all(
        pc.all(pc.string_is_ascii(c)).as_py() is not False and not pc.any(pc.match_substring(c, "\n")).as_py()
        for c in columns
    )
    if not simple or not names:
        rows = [list(row) for row in zip(*(c.to_pylist() for c in columns), strict=True)]
        return render_table(names, rows).encode()
    widths = [max(len(name), pc.max(pc.utf8_length(c)).as_py() or 0) for name, c in zip(names, columns, strict=True)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    header = "| " + " | ".join(name.ljust(w) for name, w in zip(names, widths, strict=True)) + " |"
    top = f"{rule}\n{header}\n{rule}\n".encode()
    if not len(columns[0]):
        return top + rule.encode()
    padded = [pc.utf8_rpad(c, width=w, padding=" ") for c, w in zip(columns, widths, strict=True)]
    cells = pc.binary_join_element_wise(*padded, " | ")
    lines = pc.binary_join_element_wise(pa.scalar("| "), cells, pa.scalar(" |\n"), "")
    return top + _concat(lines) + rule.encode()


# --- streaming renderer --------------------------------------------------------------------------------------


class Renderer:
    """Turns one query result into body bytes, batch by batch.

    `feed(batch)` returns the bytes ready so far, `finish()` the rest. A result whose schema has no columns is
    a statement without output (DDL): its body is empty, as in CnosDB. A query with columns but no rows prints
    the CSV/TSV header (and the table's frame) but nothing for JSON and ND-JSON.
    """

    def __init__(self, fmt: ResultFormat, schema: pa.Schema, *, with_header: bool = True) -> None:
        self.fmt = fmt
        self.schema = schema
        self.names = [field.name for field in schema]
        self._with_header = with_header
        self._started = False
        self._table_columns: list[list[pa.Array]] = [[] for _ in self.names]
        self._json_keys = [orjson.dumps(name).decode() + ":" for name in self.names]
        self._json_rows_written = False

    def _begin(self) -> str:
        if self._started or not self.names:
            return ""
        self._started = True
        if self.fmt in (ResultFormat.CSV, ResultFormat.TSV) and self._with_header:
            return _csv_record(self.names, "," if self.fmt is ResultFormat.CSV else "\t")
        return ""

    def feed(self, batch: pa.RecordBatch) -> bytes:
        if not self.names:
            return b""
        head = self._begin()
        if batch.num_rows == 0:
            return head.encode()
        if self.fmt in (ResultFormat.CSV, ResultFormat.TSV):
            delimiter = "," if self.fmt is ResultFormat.CSV else "\t"
            fields = [csv_column(column, delimiter) for column in batch.columns]
            if len(fields) == 1:  # a lone empty field is written quoted, or the record would vanish
                fields[0] = pc.if_else(pc.equal(fields[0], ""), pa.scalar('""'), fields[0])
            records = pc.binary_join_element_wise(*fields, delimiter)
            return head.encode() + _concat(pc.binary_join_element_wise(records, pa.scalar("\n"), ""))
        if self.fmt is ResultFormat.TABLE:
            for kept, column in zip(self._table_columns, batch.columns, strict=True):
                kept.append(display_column(column))
            return head.encode()
        fragments = [json_column(column, name) for column, name in zip(batch.columns, self.names, strict=True)]
        members = pc.utf8_rtrim(pc.binary_join_element_wise(*fragments, ""), characters=",")
        objects = pc.binary_join_element_wise(pa.scalar("{"), members, pa.scalar("}"), "")
        if self.fmt is ResultFormat.NDJSON:
            return head.encode() + _concat(pc.binary_join_element_wise(objects, pa.scalar("\n"), ""))
        prefix = b"," if self._json_rows_written else b"["
        self._json_rows_written = True
        joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(objects)], pa.int32()), objects), ",")[0]
        return head.encode() + prefix + bytes(joined.as_buffer())

    def finish(self) -> bytes:
        if not self.names:
            return b""
        head = self._begin()
        if self.fmt is ResultFormat.TABLE:
            columns = [pa.concat_arrays(kept) if kept else pa.array([], pa.string()) for kept in self._table_columns]
            return head.encode() + render_table_columns(self.names, columns)
        if self.fmt is ResultFormat.JSON and self._json_rows_written:
            return (head + "]").encode()
        return head.encode()


def render(fmt: ResultFormat, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """The body of one result, in pieces (never empty pieces)."""
    renderer = Renderer(fmt, schema)
    for batch in batches:
        piece = renderer.feed(batch)
        if piece:
            yield piece
    tail = renderer.finish()
    if tail:
        yield tail


def render_bytes(fmt: ResultFormat, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> bytes:
    return b"".join(render(fmt, schema, batches))
