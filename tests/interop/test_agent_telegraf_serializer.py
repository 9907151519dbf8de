"""The agent's influx and json serializers against Telegraf's own, byte for byte.

Telegraf's serializer package (github.com/influxdata/telegraf, pinned below) is built from the Go module proxy
into a tiny program that reads metrics as JSON and prints what Telegraf writes for each (hex) or `ERR <reason>`.
Thousands of seeded random metrics with every troublesome character and value go through both. Needs `go`; the
build is cached under ~/.cache/tidepool-tests. Fields are sorted on both sides (Telegraf's own field order is
Go map order, i.e. random).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tidepool.agent.plugins.serializers.influx import InfluxSerializer
from tidepool.lineproto import Metric, SerializeError

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]

TELEGRAF_VERSION = "v1.37.2"
CACHE = Path(os.environ.get("TIDEPOOL_TEST_CACHE", Path.home() / ".cache" / "tidepool-tests"))

PROGRAM = r"""// Reads one metric per line as JSON and prints Telegraf's influx serialization in hex, or ERR <reason>.
package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/serializers/influx"
)

func main() {
	maxLine := flag.Int("max-line-bytes", 0, "")
	uints := flag.Bool("uint", false, "")
	flag.Parse()
	s := &influx.Serializer{MaxLineBytes: *maxLine, SortFields: true, UintSupport: *uints}
	if err := s.Init(); err != nil {
		panic(err)
	}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for sc.Scan() {
		var in struct {
			Name   string
			Tags   map[string]string
			Fields map[string][2]string
			Time   int64
		}
		if err := json.Unmarshal(sc.Bytes(), &in); err != nil {
			panic(err)
		}
		fields := map[string]interface{}{}
		for k, tv := range in.Fields {
			switch tv[0] {
			case "f":
				v, _ := strconv.ParseFloat(tv[1], 64)
				fields[k] = v
			case "i":
				v, _ := strconv.ParseInt(tv[1], 10, 64)
				fields[k] = v
			case "u":
				v, _ := strconv.ParseUint(tv[1], 10, 64)
				fields[k] = v
			case "b":
				fields[k] = tv[1] == "true"
			default:
				fields[k] = tv[1]
			}
		}
		b, err := s.Serialize(metric.New(in.Name, in.Tags, fields, time.Unix(0, in.Time)))
		if err != nil {
			fmt.Fprintf(out, "ERR %s\n", err)
			continue
		}
		fmt.Fprintf(out, "%s\n", hex.EncodeToString(b))
	}
}
"""


def build_go_program(name: str, source: str) -> Path:
    """`source` (package main, importing Telegraf at TELEGRAF_VERSION) built once under the test cache.

    Skips the calling test, saying why, when Go or the module proxy is not available.
    """
    if shutil.which("go") is None:
        pytest.skip(f"comparing with Telegraf ({name}) needs `go`")
    home = CACHE / f"{name}-{TELEGRAF_VERSION}"
    binary = home / name
    if binary.exists() and (home / "main.go").read_text() == source:
        return binary
    home.mkdir(parents=True, exist_ok=True)
    (home / "main.go").write_text(source)
    steps = [
        ["go", "mod", "init", name.replace("-", "")],
        ["go", "get", f"github.com/influxdata/telegraf@{TELEGRAF_VERSION}"],
        ["go", "mod", "tidy"],
        ["go", "build", "-o", str(binary), "."],
    ]
    if (home / "go.mod").exists():
        steps = steps[1:]
    for step in steps:
        result = subprocess.run(step, cwd=home, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            pytest.skip(f"could not build {name} ({' '.join(step)}): {result.stderr[-500:]}")
    return binary


def telegraf_serializer() -> Path:
    return build_go_program("telegraf-serializer", PROGRAM)


ALPHABET = ["a", "b", "z", "_", " ", ",", "=", '"', "\\", "\t", "\n", "\r", "\f", "é", "水", "🌊", "0", "-"]
FLOATS = [0.0, -0.0, 0.1, 5.0, -2.5, 1e-7, 1.5e-300, 1e21, 1.7976931348623157e308, 123456.789, math.nan, math.inf]
INTS = [0, 1, -1, 42, 2**63 - 1, -(2**63)]
UINTS = [0, 7, 2**63 - 1, 2**63, 2**64 - 1]


def _text(rng: random.Random, empty_ok: bool = True) -> str:
    size = rng.randint(0 if empty_ok else 1, 6)
    return "".join(rng.choice(ALPHABET) for _ in range(size))


def random_metrics(count: int, seed: int) -> list[tuple[Metric, dict[str, object]]]:
    """(our Metric, the JSON the Go program reads) pairs."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        name = _text(rng) if rng.random() < 0.2 else rng.choice(["cpu", "kafka_consumer", "we ird,name"])
        tags = {_text(rng): _text(rng) for _ in range(rng.randint(0, 3))}
        fields: dict[str, object] = {}
        typed: dict[str, list[str]] = {}
        unsigned = set()
        for _ in range(rng.randint(0, 4)):
            key = _text(rng) if rng.random() < 0.5 else rng.choice(["pressure", "temperature", "visibility"])
            kind = rng.choice("fffiusb")
            if kind == "f":
                value = rng.choice(FLOATS) if rng.random() < 0.5 else rng.uniform(-1e6, 1e6)
                fields[key], typed[key] = value, ["f", repr(value).replace("inf", "+Inf").replace("nan", "NaN")]
            elif kind == "i":
                value = rng.choice(INTS) if rng.random() < 0.5 else rng.randint(-(10**12), 10**12)
                fields[key], typed[key] = value, ["i", str(value)]
            elif kind == "u":
                value = rng.choice(UINTS)
                fields[key], typed[key] = value, ["u", str(value)]
                unsigned.add(key)
            elif kind == "s":
                value = _text(rng)
                fields[key], typed[key] = value, ["s", value]
            else:
                value = rng.random() < 0.5
                fields[key], typed[key] = value, ["b", "true" if value else "false"]
            if kind != "u":
                unsigned.discard(key)
        ts = rng.choice([0, 1, -1, 1_700_000_000_123_456_789, rng.randint(-(2**62), 2**62)])
        metric = Metric(name, tags, fields, ts, frozenset(unsigned))
        pairs.append((metric, {"Name": name, "Tags": tags, "Fields": typed, "Time": ts}))
    return pairs


@pytest.mark.parametrize(("uint_support", "max_line_bytes"), [(False, 0), (True, 0), (False, 48), (True, 90)], ids=str)
def test_influx_serializer_writes_what_telegraf_writes(uint_support: bool, max_line_bytes: int) -> None:
    binary = telegraf_serializer()
    pairs = random_metrics(3000, seed=max_line_bytes * 2 + uint_support)
    stdin = "".join(json.dumps(doc, ensure_ascii=False) + "\n" for _m, doc in pairs)
    argv = [str(binary), f"-max-line-bytes={max_line_bytes}"] + (["-uint"] if uint_support else [])
    result = subprocess.run(argv, input=stdin.encode(), capture_output=True, timeout=120, check=True)
    answers = result.stdout.decode().splitlines()
    assert len(answers) == len(pairs)
    ours = InfluxSerializer(sort_fields=True, uint_support=uint_support, max_line_bytes=max_line_bytes)
    mismatches = []
    for (metric, _doc), answer in zip(pairs, answers, strict=True):
        try:
            got = ours.serialize(metric)
        except SerializeError as exc:
            if not (answer.startswith("ERR ") and answer.endswith(str(exc))):
                mismatches.append((metric, answer, f"ERR {exc}"))
            continue
        if answer.startswith("ERR ") or bytes.fromhex(answer) != got:
            mismatches.append((metric, answer if answer.startswith("ERR") else bytes.fromhex(answer), got))
    assert mismatches == [], f"{len(mismatches)} of {len(pairs)} differ, e.g. {mismatches[:3]}"


JSON_PROGRAM = r"""// Reads one metric per line as JSON, prints Telegraf's JSON serialization of it in hex;
// after every 50 metrics also the batch of those 50, tagged "B ".
package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	serializer "github.com/influxdata/telegraf/plugins/serializers/json"
)

func main() {
	units := flag.Int64("units-ns", int64(time.Second), "")
	layout := flag.String("format", "", "")
	flag.Parse()
	s := &serializer.Serializer{TimestampUnits: config.Duration(*units), TimestampFormat: *layout}
	if err := s.Init(); err != nil {
		panic(err)
	}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	batch := []telegraf.Metric{}
	for sc.Scan() {
		var in struct {
			Name   string
			Tags   map[string]string
			Fields map[string][2]string
			Time   int64
		}
		if err := json.Unmarshal(sc.Bytes(), &in); err != nil {
			panic(err)
		}
		fields := map[string]interface{}{}
		for k, tv := range in.Fields {
			switch tv[0] {
			case "f":
				v, _ := strconv.ParseFloat(tv[1], 64)
				fields[k] = v
			case "i":
				v, _ := strconv.ParseInt(tv[1], 10, 64)
				fields[k] = v
			case "u":
				v, _ := strconv.ParseUint(tv[1], 10, 64)
				fields[k] = v
			case "b":
				fields[k] = tv[1] == "true"
			default:
				fields[k] = tv[1]
			}
		}
		m := metric.New(in.Name, in.Tags, fields, time.Unix(0, in.Time))
		b, err := s.Serialize(m)
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(out, "%s\n", hex.EncodeToString(b))
		batch = append(batch, m)
		if len(batch) == 50 {
			b, err := s.SerializeBatch(batch)
			if err != nil {
				panic(err)
			}
			fmt.Fprintf(out, "B %s\n", hex.EncodeToString(b))
			batch = batch[:0]
		}
	}
}
"""


@pytest.mark.parametrize(
    ("units_ns", "layout"),
    [
        (10**9, ""),
        (10**6, ""),
        (1_500_000_000, ""),  # Telegraf rounds the unit down to a power of ten: 1s
        (1, ""),
        (10**9, "2006-01-02T15:04:05.999999999Z07:00"),
        (10**9, "Mon Jan _2 03:04:05.000 PM MST 2006 (002)"),
    ],
    ids=str,
)
def test_json_serializer_writes_what_telegraf_writes(units_ns: int, layout: str) -> None:
    from tidepool.agent.plugins.serializers.json import JSONSerializer

    binary = build_go_program("telegraf-json-serializer", JSON_PROGRAM)
    pairs = random_metrics(1000, seed=units_ns % 1000 + len(layout))
    stdin = "".join(json.dumps(doc, ensure_ascii=False) + "\n" for _m, doc in pairs)
    argv = [str(binary), f"-units-ns={units_ns}", f"-format={layout}"]
    result = subprocess.run(argv, input=stdin.encode(), capture_output=True, timeout=120, check=True)
    answers = result.stdout.decode().splitlines()
    ours = JSONSerializer(units_ns, layout)
    singles = [a for a in answers if not a.startswith("B ")]
    batches = [a[2:] for a in answers if a.startswith("B ")]
    assert len(singles) == len(pairs) and len(batches) == len(pairs) // 50
    mismatches = [
        (metric, bytes.fromhex(answer), ours.serialize(metric))
        for (metric, _doc), answer in zip(pairs, singles, strict=True)
        if bytes.fromhex(answer) != ours.serialize(metric)
    ]
    assert mismatches == [], f"{len(mismatches)} of {len(pairs)} differ, e.g. {mismatches[:3]}"
    for index, answer in enumerate(batches):
        chunk = [metric for metric, _doc in pairs[index * 50 : (index + 1) * 50]]
        assert bytes.fromhex(answer) == ours.serialize_batch(chunk)
