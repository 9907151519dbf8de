"""Timestamps as Telegraf's internal.ParseTimestamp reads them: unix epochs, Go's named formats, Go layouts.

`unix`, `unix_ms`, `unix_us`, `unix_ns` (exactly so spelled) take a number or a numeric string ("." or "," as
decimal separator, spaces ignored, also `a/b` and 0x… as Go's big.Rat reads them); the exact value is rounded down
to nanoseconds. Anything else is a Go time layout (reference time `Mon Jan 2 15:04:05 MST 2006`) or one of Go's
named layouts (`rfc3339`, `ansic`, … case-insensitive). Text without a zone offset is read in the given timezone;
a zone abbreviation (layout `MST`) is looked up as an IANA name (CET and EST resolve, CEST and IST are errors).
Checked against Telegraf's own parsing by tests/interop/test_agent_telegraf_timestamps.py.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
from fractions import Fraction
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UNIX_UNITS = {"unix": 10**9, "unix_ms": 10**6, "unix_us": 10**3, "unix_ns": 1}

NAMED_LAYOUTS = {
    "ansic": "Mon Jan _2 15:04:05 2006",
    "unixdate": "Mon Jan _2 15:04:05 MST 2006",
    "rubydate": "Mon Jan 02 15:04:05 -0700 2006",
    "rfc822": "02 Jan 06 15:04 MST",
    "rfc822z": "02 Jan 06 15:04 -0700",
    "rfc850": "Monday, 02-Jan-06 15:04:05 MST",
    "rfc1123": "Mon, 02 Jan 2006 15:04:05 MST",
    "rfc1123z": "Mon, 02 Jan 2006 15:04:05 -0700",
    "rfc3339": "2006-01-02T15:04:05Z07:00",
    "rfc3339nano": "2006-01-02T15:04:05.999999999Z07:00",
    "stamp": "Jan _2 15:04:05",
    "stampmilli": "Jan _2 15:04:05.000",
    "stampmicro": "Jan _2 15:04:05.000000",
    "stampnano": "Jan _2 15:04:05.000000000",
}

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})

# Go layout chunks, longest first where one is a prefix of another: (chunk, regex, group name or None).
_CHUNKS: list[tuple[str, str, str | None]] = [
    ("January", r"[A-Za-z]+", "month_name"),
    ("Jan", r"[A-Za-z]{3}", "month_name"),
    ("Monday", r"[A-Za-z]+", None),
    ("Mon", r"[A-Za-z]{3}", None),
    ("MST", r"[A-Za-z]{3,5}|[+-]\d{2,4}", "zone_name"),
    ("2006", r"\d{4}", "year"),
    ("-07:00:00", r"[+-]\d{2}:\d{2}:\d{2}", "offset"),
    ("-070000", r"[+-]\d{6}", "offset"),
    ("-07:00", r"[+-]\d{2}:\d{2}", "offset"),
    ("-0700", r"[+-]\d{4}", "offset"),
    ("-07", r"[+-]\d{2}", "offset"),
    ("Z07:00:00", r"Z|[+-]\d{2}:\d{2}:\d{2}", "offset"),
    ("Z070000", r"Z|[+-]\d{6}", "offset"),
    ("Z07:00", r"Z|[+-]\d{2}:\d{2}", "offset"),
    ("Z0700", r"Z|[+-]\d{4}", "offset"),
    ("Z07", r"Z|[+-]\d{2}", "offset"),
    ("002", r"\d{3}", "yday"),
    ("__2", r"[ \d]{2}\d", "yday"),
    ("_2", r" ?\d{1,2}", "day"),
    ("01", r"\d{2}", "month"),
    ("02", r"\d{2}", "day"),
    ("03", r"\d{2}", "hour12"),
    ("04", r"\d{2}", "minute"),
    ("05", r"\d{2}", "second"),
    ("06", r"\d{2}", "year2"),
    ("15", r"\d{1,2}", "hour"),
    ("1", r"\d{1,2}", "month"),
    ("2", r"\d{1,2}", "day"),
    ("3", r"\d{1,2}", "hour12"),
    ("4", r"\d{1,2}", "minute"),
    ("5", r"\d{1,2}", "second"),
    ("PM", r"AM|PM", "ampm"),
    ("pm", r"am|pm", "ampm"),
]
_FRACTION = re.compile(r"[.,](0+|9+)(?!\d)")


class TimestampError(ValueError):
    pass


@lru_cache(maxsize=64)
def _compile_layout(layout: str) -> re.Pattern[str]:
    parts: list[str] = []
    used: set[str] = set()
    i = 0
    while i < len(layout):
        frac = _FRACTION.match(layout, i)
        if frac:
            digits = frac.group(1)
            if digits[0] == "0":
                parts.append(r"[.,](?P<fraction>\d{" + str(len(digits)) + "})")
            else:
                parts.append(r"(?:[.,](?P<fraction>\d+))?")
            used.add("fraction")
            i = frac.end()
            continue
        for chunk, pattern, group in _CHUNKS:
            if layout.startswith(chunk, i):
                if group is None or group in used:
                    parts.append(f"(?:{pattern})")
                else:
                    parts.append(f"(?P<{group}>{pattern})")
                    used.add(group)
                if group == "second" and "fraction" not in used and not _FRACTION.match(layout, i + len(chunk)):
                    # Go accepts fractional seconds after the seconds field even when the layout has none.
                    parts.append(r"(?:[.,](?P<fraction>\d+))?")
                    used.add("fraction")
                i += len(chunk)
                break
        else:
            parts.append(re.escape(layout[i]))
            i += 1
    return re.compile("".join(parts) + r"\Z")


def _zone(name: str) -> dt.tzinfo:
    if name in ("", "UTC"):
        return dt.UTC
    if name == "Local":
        local = dt.datetime.now().astimezone().tzinfo
        return local if local is not None else dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimestampError(f"unknown time zone {name}") from None


def _offset(text: str) -> dt.tzinfo:
    if text == "Z":
        return dt.UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes, seconds = int(digits[:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes, seconds=seconds))


def parse_layout(layout: str, text: str, timezone: str = "") -> int:
    """Nanoseconds since the epoch of `text` read with Go layout `layout`."""
    match = _compile_layout(layout).match(text.strip())
    if match is None:
        raise TimestampError(f'parsing time "{text}" as "{layout}": cannot parse')
    g = match.groupdict()
    year = int(g["year"]) if g.get("year") else None
    if year is None and g.get("year2"):
        short = int(g["year2"])
        year = short + (1900 if short >= 69 else 2000)
    if year is None:
        year = dt.datetime.now(dt.UTC).year  # a layout without a year means this year, as Telegraf does
    if g.get("month_name"):
        month = _MONTHS.get(g["month_name"].lower())
        if month is None:
            raise TimestampError(f'parsing time "{text}": month out of range')
    else:
        month = int(g["month"]) if g.get("month") else 1
    day = int(g["day"].strip()) if g.get("day") else 1
    hour = int(g["hour"]) if g.get("hour") else 0
    if g.get("hour12"):
        hour = int(g["hour12"]) % 12
        if (g.get("ampm") or "").lower() == "pm":
            hour += 12
    minute = int(g["minute"]) if g.get("minute") else 0
    second = int(g["second"]) if g.get("second") else 0
    fraction = g.get("fraction") or ""
    nanos = int((fraction + "000000000")[:9]) if fraction else 0
    if g.get("offset"):
        tz = _offset(g["offset"])
    elif g.get("zone_name"):
        zone = g["zone_name"]
        tz = _zone_abbreviation(zone)  # a numeric zone here ("+11") is not a name either: an error, as in Telegraf
    else:
        tz = _zone(timezone)
    try:
        if g.get("yday"):
            base = dt.datetime(year, 1, 1, hour, minute, second, tzinfo=tz)
            moment = base + dt.timedelta(days=int(g["yday"].strip()) - 1)
        else:
            moment = dt.datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError as exc:
        raise TimestampError(f'parsing time "{text}": {exc}') from None
    return calendar.timegm(moment.utctimetuple()) * 10**9 + nanos


def _zone_abbreviation(name: str) -> dt.tzinfo:
    """Telegraf (since v1.27) resolves a zone abbreviation as an IANA name: CET and EST work, CEST and IST fail."""
    if name == "UTC":
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimestampError(f'cannot resolve timezone abbreviation "{name}": unknown time zone {name}') from None


_DIGITS = r"\d(?:_?\d)*"  # Go allows an underscore between digits
_DECIMAL = re.compile(rf"[+-]?(?:{_DIGITS}\.?(?:{_DIGITS})?|\.{_DIGITS})(?:[eE][+-]?\d+)?")
_PREFIXED_INT = re.compile(r"([+-]?)(0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+)")


def _go_rational(text: str) -> Fraction | None:
    """Go's big.Rat.SetString for the forms timestamps use: decimals with exponent, `a/b`, 0x/0b/0o integers."""
    if "/" in text:
        numerator, _, denominator = text.partition("/")
        top, bottom = _go_rational(numerator), _go_rational(denominator)
        if top is None or bottom is None or bottom == 0 or "." in text or denominator[:1] in "+-":
            return None
        return top / bottom
    if _DECIMAL.fullmatch(text):
        return Fraction(text.replace("_", ""))
    prefixed = _PREFIXED_INT.fullmatch(text)
    if prefixed:
        return Fraction((-1 if prefixed.group(1) == "-" else 1) * int(prefixed.group(2), 0))
    return None


def parse_unix(unit_ns: int, value: object) -> int:
    """As Telegraf: exact arithmetic, rounded down; in strings spaces are dropped and a comma is a decimal point."""
    if isinstance(value, bool):
        raise TimestampError("unsupported type")
    if isinstance(value, int):
        return value * unit_ns
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TimestampError("invalid number")
        return math.floor(Fraction(value) * unit_ns)
    if isinstance(value, str):
        text = value.replace(" ", "")
        text = text.replace(",", ".", 1) if "," in text else text
        rational = _go_rational(text)
        if rational is None:
            raise TimestampError("invalid number")
        return math.floor(rational * unit_ns)
    raise TimestampError("unsupported type")


def parse_timestamp(fmt: str, value: object, timezone: str = "") -> int:
    """Nanoseconds since the epoch of `value` in Telegraf timestamp format `fmt`."""
    unit = UNIX_UNITS.get(fmt)  # case matters here (not for the named layouts), as in Telegraf
    if unit is not None:
        return parse_unix(unit, value)
    if not isinstance(value, str):
        raise TimestampError("unsupported type")
    layout = NAMED_LAYOUTS.get(fmt.lower(), fmt)
    return parse_layout(layout, value, timezone)


def format_layout(layout: str, time_ns: int) -> str:
    """Go's time.Format of a UTC instant with `layout` (what Telegraf's json_timestamp_format writes)."""
    seconds, nanos = divmod(time_ns, 10**9)
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    hour12 = moment.hour % 12 or 12
    words = {
        "January": calendar.month_name[moment.month], "Jan": calendar.month_abbr[moment.month],
        "Monday": calendar.day_name[moment.weekday()], "Mon": calendar.day_abbr[moment.weekday()],
        "MST": "UTC", "2006": f"{moment.year:04d}",
        "-07:00:00": "+00:00:00", "-070000": "+000000", "-07:00": "+00:00", "-0700": "+0000", "-07": "+00",
        "Z07:00:00": "Z", "Z070000": "Z", "Z07:00": "Z", "Z0700": "Z", "Z07": "Z",
        "002": f"{moment.timetuple().tm_yday:03d}", "__2": f"{moment.timetuple().tm_yday:>3d}",
        "_2": f"{moment.day:>2d}", "01": f"{moment.month:02d}", "02": f"{moment.day:02d}", "03": f"{hour12:02d}",
        "04": f"{moment.minute:02d}", "05": f"{moment.second:02d}", "06": f"{moment.year % 100:02d}",
        "15": f"{moment.hour:02d}", "1": str(moment.month), "2": str(moment.day), "3": str(hour12),
        "4": str(moment.minute), "5": str(moment.second),
        "PM": "PM" if moment.hour >= 12 else "AM", "pm": "pm" if moment.hour >= 12 else "am",
    }  # fmt: skip
    out: list[str] = []
    i = 0
    while i < len(layout):
        frac = _FRACTION.match(layout, i)
        if frac:
            digits = frac.group(1)
            text = f"{nanos:09d}"[: len(digits)]
            if digits[0] == "9":
                text = text.rstrip("0")
            if text:
                out.append(layout[i] + text)
            i = frac.end()
            continue
        for chunk, _pattern, _group in _CHUNKS:
            if layout.startswith(chunk, i):
                out.append(words[chunk])
                i += len(chunk)
                break
        else:
            out.append(layout[i])
            i += 1
    return "".join(out)
