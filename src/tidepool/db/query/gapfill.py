"""CnosDB's gap filling: `time_window_gapfill(time, window)` with `interpolate(agg)` / `locf(agg)`.

    SELECT t0, time_window_gapfill(time, INTERVAL '10 milliseconds') AS w, interpolate(avg(f1))
    FROM m2 WHERE time BETWEEN '...' AND '...' GROUP BY t0, w

The statement runs as a plain `date_bin` aggregation; then, per group (the other non-aggregate select items), every
window from the WHERE clause's lower time bound to its upper bound gets a row: values the aggregation produced are
kept, missing ones stay null, or are filled by `interpolate` (linear in time between the neighbouring values, never
beyond them) or `locf` (the last value carried forward). The window column holds the window start, as in CnosDB.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from tidepool.db import errors
from tidepool.db.query.sql import _matching_paren, _split_args, _unquoted, parse_duration

_GAPFILL = re.compile(r"\btime_window_gapfill\s*\(", re.IGNORECASE)
_FILL = re.compile(r"\A(interpolate|locf)\s*\(", re.IGNORECASE)
_AGGREGATE = re.compile(
    r"\b(count|sum|avg|min|max|mean|median|stddev|var|first_value|last_value|first|last|mode|increase|"
    r"approx_percentile_cont|approx_median|array_agg)\s*\(",
    re.IGNORECASE,
)
_ALIAS = re.compile(r"\s+(?:AS\s+)?([^\W\d][\w$]*|\"[^\"]+\")\s*\Z", re.IGNORECASE)
_TIME_CMP = re.compile(
    r"\btime\s*(>=|>|<=|<)\s*((?:timestamp\s*)?'[^']*')|\btime\s+BETWEEN\s+((?:timestamp\s*)?'[^']*')\s+AND\s+"
    r"((?:timestamp\s*)?'[^']*')",
    re.IGNORECASE,
)


@dataclass
class GapFill:
    """How to complete the rows of a rewritten statement."""

    sql: str  # the statement with date_bin instead of the gap-filling functions
    time_column: int
    window_ns: int
    lower: str  # SQL literals of the WHERE bounds
    upper: str
    keys: list[int]  # select items that identify a group
    fills: dict[int, str]  # select item → interpolate | locf
    aliased: set[int]  # select items the statement names itself


def plan(sql: str) -> GapFill | None:
    """None if `sql` does not use time_window_gapfill; otherwise the rewritten statement and the filling plan."""
    if _GAPFILL.search(sql) is None:
        return None
    select = re.match(r"\s*SELECT\s+", sql, re.IGNORECASE)
    from_match = _top_level_from(sql)
    if select is None or from_match is None:
        raise errors.not_implemented("time_window_gapfill outside a plain SELECT ... FROM ... statement")
    items = _split_args(sql[select.end() : from_match])
    rewritten: list[str] = []
    time_column = -1
    window_ns = 0
    keys: list[int] = []
    fills: dict[int, str] = {}
    aliased: set[int] = set()
    for index, item in enumerate(items):
        body, alias = _strip_alias(item)
        if alias:
            aliased.add(index)
        gap = _GAPFILL.match(body)
        fill = _FILL.match(body)
        if gap is not None:
            args = _split_args(body[gap.end() : _matching_paren(body, gap.end() - 1)])
            window_ns = _window(args)
            interval = f"INTERVAL '{window_ns} nanoseconds'"
            body = f"date_bin({interval}, {args[0]})"
            time_column = index
        elif fill is not None:
            close = _matching_paren(body, fill.end() - 1)
            fills[index] = fill.group(1).lower()
            body = body[fill.end() : close]
        elif _AGGREGATE.search(body) is None:
            keys.append(index)
        rewritten.append(body + (f" AS {alias}" if alias else ""))
    if time_column < 0:
        raise errors.not_implemented("time_window_gapfill must be a whole select item")
    lower, upper = _bounds(sql[from_match:])
    statement = sql[: select.end()] + ", ".join(rewritten) + " " + sql[from_match:]
    return GapFill(statement, time_column, window_ns, lower, upper, keys, fills, aliased)


def fill(table: pa.Table, gap: GapFill, lower_ns: int, upper_ns: int) -> pa.Table:
    """Every window of [lower, upper] for every group of `table` (the rewritten statement's result)."""
    time_name = table.column_names[gap.time_column]
    time_type = table.schema.field(gap.time_column).type
    unit_ns = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[time_type.unit]
    step = max(1, gap.window_ns // unit_ns)
    first = (lower_ns // unit_ns) // step * step
    last = upper_ns // unit_ns
    windows = list(range(first, last + 1, step))
    times = table.column(time_name).cast(pa.int64()).to_pylist()
    rows = table.to_pylist()
    names = table.column_names
    key_names = [names[i] for i in gap.keys]
    groups: dict[tuple[object, ...], dict[int, dict[str, object]]] = {}
    for row, start in zip(rows, times, strict=True):
        groups.setdefault(tuple(row[k] for k in key_names), {})[start] = row
    columns: dict[str, list[object]] = {name: [] for name in names}
    for key in sorted(groups, key=_sort_key):
        by_window = groups[key]
        for position, name in enumerate(names):
            if position == gap.time_column:
                columns[name].extend(windows)
            elif name in key_names:
                columns[name].extend([key[key_names.index(name)]] * len(windows))
            else:
                values = [by_window[w][name] if w in by_window else None for w in windows]
                strategy = gap.fills.get(position)
                columns[name].extend(_FILLERS[strategy](values) if strategy else values)
    arrays = []
    out_names = []
    for position, name in enumerate(names):
        field_type = table.schema.field(position).type
        if position == gap.time_column:
            arrays.append(pa.array(columns[name], pa.int64()).cast(field_type))
        elif gap.fills.get(position) == "interpolate" and pa.types.is_integer(field_type):
            arrays.append(pa.array(columns[name], pa.float64()))  # values between two integers are fractions
        else:
            arrays.append(pa.array(columns[name], field_type))
        # CnosDB names a locf column after the call, an interpolate column after the aggregate inside it.
        out_names.append(f"locf({name})" if gap.fills.get(position) == "locf" and position not in gap.aliased else name)
    return pa.Table.from_arrays(arrays, names=out_names)


def _interpolate(values: list[object]) -> list[object]:
    result = list(values)
    known = [i for i, v in enumerate(values) if v is not None]
    for left, right in itertools.pairwise(known):
        a, b = values[left], values[right]
        assert isinstance(a, int | float) and isinstance(b, int | float)
        for i in range(left + 1, right):
            result[i] = a + (b - a) * (i - left) / (right - left)
    return result


def _locf(values: list[object]) -> list[object]:
    result: list[object] = []
    last = None
    for value in values:
        if value is not None:
            last = value
        result.append(value if value is not None else last)
    return result


_FILLERS: dict[str, Callable[[list[object]], list[object]]] = {"interpolate": _interpolate, "locf": _locf}


def _sort_key(key: tuple[object, ...]) -> tuple[tuple[int, object], ...]:
    return tuple((0, "") if v is None else (1, v) for v in key)


def _window(args: list[str]) -> int:
    if not 2 <= len(args) <= 4:
        raise errors.invalid_time_window("time_window_gapfill needs (time, window[, slide[, start]])")
    window = _duration(args[1])
    if len(args) >= 3 and args[2].strip().upper() != "NULL" and _duration(args[2]) != window:
        raise errors.not_implemented("time_window_gapfill with a slide different from the window")
    if len(args) == 4 and args[3].strip().upper() != "NULL":
        raise errors.not_implemented("time_window_gapfill with a start time")
    return window


def _duration(arg: str) -> int:
    text = arg.strip()
    interval = re.fullmatch(r"INTERVAL\s+'([^']*)'", text, re.IGNORECASE)
    if interval:
        text = "'" + interval.group(1) + "'"
    match = re.fullmatch(r"'\s*(\d+)\s*([A-Za-z ]+?)\s*'", text)
    if match is None:
        raise errors.invalid_time_window(f"unsupported window duration {arg.strip()}")
    unit = match.group(2).strip()
    unit = {"millisecond": "ms", "milliseconds": "ms", "microsecond": "us", "microseconds": "us"}.get(unit, unit)
    nanos = parse_duration(f"{match.group(1)}{unit}")
    if nanos is None:
        raise errors.invalid_time_window("the window must be finite")
    return nanos


def _bounds(tail: str) -> tuple[str, str]:
    lower = upper = None
    for match in _TIME_CMP.finditer(tail):
        op, literal, between_low, between_high = match.groups()
        if between_low is not None:
            lower, upper = between_low, between_high
        elif op in (">", ">="):
            lower = literal
        else:
            upper = literal
    if lower is None or upper is None:
        raise errors.invalid_param("time_window_gapfill needs lower and upper bounds on time in WHERE")
    return lower, upper


def _strip_alias(item: str) -> tuple[str, str | None]:
    text = item.strip()
    match = _ALIAS.search(text)
    if match is None or text[: match.start()].rstrip().endswith(("(", ",")) or not text[: match.start()].strip():
        return text, None
    body = text[: match.start()].rstrip()
    if body.count("(") != body.count(")"):
        return text, None
    return body, match.group(1)


def _top_level_from(sql: str) -> int | None:
    for i, _ch, depth in _unquoted(sql):
        if depth == 0 and sql[i : i + 4].upper() == "FROM" and (i == 0 or not sql[i - 1].isalnum()):
            return i
    return None
