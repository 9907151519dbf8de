"""json_time_key / json_time_format against Telegraf's own parsing, on times Go itself formatted.

A small Go program (Telegraf pinned, from the Go module proxy) does two jobs: format an instant with a Go layout
in a zone (so the texts are exactly what Go writes), and parse `{"time": value}` with Telegraf's JSON parser
(which calls Telegraf's timestamp parsing). tidepool's parse_timestamp must give the same nanoseconds, or fail
where Telegraf fails. Needs `go`; cached build.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.interop.test_agent_telegraf_serializer import build_go_program
from tidepool.agent.timeparse import NAMED_LAYOUTS, TimestampError, parse_timestamp

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]

PROGRAM = r"""// One JSON request per line. {"layout", "ns", "tz"}: print Go's time.Format of that instant in that zone.
// {"format", "tz", "value"}: parse {"time": value, "v": 1} with Telegraf's JSON parser (json_time_key = "time")
// and print the metric's time in ns, or ERR <reason>.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"time"

	parser "github.com/influxdata/telegraf/plugins/parsers/json"
)

type request struct {
	Layout *string          `json:"layout"`
	NS     int64            `json:"ns"`
	TZ     string           `json:"tz"`
	Format string           `json:"format"`
	Value  *json.RawMessage `json:"value"`
}

func main() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for sc.Scan() {
		var r request
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			panic(err)
		}
		if r.Layout != nil {
			loc, err := time.LoadLocation(r.TZ)
			if err != nil {
				panic(err)
			}
			b, _ := json.Marshal(time.Unix(0, r.NS).In(loc).Format(*r.Layout))
			fmt.Fprintf(out, "%s\n", b)
			continue
		}
		p := &parser.Parser{MetricName: "m", TimeKey: "time", TimeFormat: r.Format, Timezone: r.TZ, Strict: true}
		if err := p.Init(); err != nil {
			fmt.Fprintf(out, "ERR %s\n", err)
			continue
		}
		metrics, err := p.Parse([]byte(`{"v": 1, "time": ` + string(*r.Value) + `}`))
		if err != nil {
			fmt.Fprintf(out, "ERR %s\n", err)
			continue
		}
		fmt.Fprintf(out, "%d\n", metrics[0].Time().UnixNano())
	}
}
"""

GO_NAMED = NAMED_LAYOUTS  # the layout names Telegraf accepts, and the Go layout each stands for
LAYOUTS = [
    "2006-01-02 15:04:05",
    "2006-01-02T15:04:05.999999999Z07:00",
    "2006-01-02T15:04:05.000-0700",
    "01/02/2006 15:04:05.000",
    "02.01.2006 15:04",
    "Jan 2 2006 3:04PM",
    "Monday, January 2, 2006 03:04:05 pm -07:00",
    "20060102150405",
    "2006-002 15:04",
    "06-1-2 15:04:05.999 -07",
    "2006-01-02 15:04:05 MST",
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]


def _run(binary: Path, requests: list[dict[str, Any]]) -> list[str]:
    stdin = "".join(json.dumps(r) + "\n" for r in requests)
    result = subprocess.run([str(binary)], input=stdin.encode(), capture_output=True, timeout=300, check=True)
    lines = result.stdout.decode().splitlines()
    assert len(lines) == len(requests)
    return lines


def _ours(fmt: str, value: object, tz: str) -> str:
    try:
        return str(parse_timestamp(fmt, value, tz))
    except TimestampError as exc:
        return f"ERR {exc}"


def _same(theirs: str, ours: str) -> bool:
    return (theirs.startswith("ERR") and ours.startswith("ERR")) or theirs == ours


def test_layouts_and_named_formats_parse_as_in_telegraf() -> None:
    binary = build_go_program("telegraf-timestamps", PROGRAM)
    rng = random.Random(7)
    cases = []  # (format given to the parser, layout used to write the text, zone written in, parser zone)
    for fmt in [*GO_NAMED, *LAYOUTS]:
        for _ in range(30):
            written_in = rng.choice(ZONES)
            parser_tz = rng.choice(["", written_in, "Asia/Kolkata"])
            ns = rng.randint(-(10**18), 4 * 10**18)  # 1938 … 2096
            if fmt.startswith("stamp") or ("2006" not in GO_NAMED.get(fmt, fmt) and "06" not in fmt):
                ns = rng.randint(1_600_000_000 * 10**9, 1_900_000_000 * 10**9)
            cases.append((fmt, GO_NAMED.get(fmt, fmt), written_in, parser_tz, ns))
    texts = _run(binary, [{"layout": layout, "ns": ns, "tz": zone} for _f, layout, zone, _p, ns in cases])
    texts = [json.loads(t) for t in texts]
    answers = _run(
        binary, [{"format": f, "tz": p, "value": text} for (f, _l, _z, p, _n), text in zip(cases, texts, strict=True)]
    )
    mismatches = []
    for (fmt, _layout, _zone, parser_tz, _ns), text, theirs in zip(cases, texts, answers, strict=True):
        ours = _ours(fmt, text, parser_tz)
        if not _same(theirs, ours):
            mismatches.append((fmt, text, parser_tz, theirs, ours))
    parsed = sum(not a.startswith("ERR") for a in answers)
    assert parsed > len(cases) * 0.8
    examples = list({m[0]: m for m in mismatches}.values())[:6]  # one per format
    assert mismatches == [], f"{len(mismatches)} of {len(cases)} differ, e.g. {examples}"


UNIX_VALUES: list[Any] = [
    0, 1, 1700000000, -5, 1700000000.5, 1700000000.123456789, 1.5e9, 17e8,
    "1700000000", "1700000000.25", "1700000000,25", " 1700000000 ", "1 700 000 000", "1.700.000.000",
    "-1.5", "3/4", "1e3", "abc", "", "0x10", "1_000", "+7", "1,5,6", True,
]  # fmt: skip


@pytest.mark.parametrize("fmt", ["unix", "unix_ms", "unix_us", "unix_ns", "UNIX", "Unix_ms"])
def test_unix_formats_read_numbers_and_strings_as_in_telegraf(fmt: str) -> None:
    binary = build_go_program("telegraf-timestamps", PROGRAM)
    requests = [{"format": fmt, "tz": "", "value": value} for value in UNIX_VALUES]
    answers = _run(binary, requests)
    mismatches = []
    for value, theirs in zip(UNIX_VALUES, answers, strict=True):
        json_value = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        ours = _ours(fmt, json_value, "")
        if not _same(theirs, ours):
            mismatches.append((value, theirs, ours))
    assert mismatches == [], mismatches
