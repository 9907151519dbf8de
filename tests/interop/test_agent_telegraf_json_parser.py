"""The agent's JSON (v1) and value parsers against Telegraf's own: same metrics (name, tags, typed fields) or both
refuse.

Telegraf's parser package (pinned version, from the Go module proxy) is built into a tiny filter program; seeded
random payloads (nested objects and arrays, every JSON value type, top-level arrays and scalars, broken JSON) go
through both, under several option sets. Times are not compared (both use "now"). Needs `go`; cached build.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.interop.test_agent_telegraf_serializer import build_go_program
from tidepool.agent.plugins import ParseError
from tidepool.agent.plugins.parsers.json import JSONParser

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]

PROGRAM = r"""// Reads one hex-encoded payload per line, parses it with Telegraf's JSON parser, prints metrics as JSON.
package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	parser "github.com/influxdata/telegraf/plugins/parsers/json"
)

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func main() {
	tagKeys := flag.String("tag-keys", "", "")
	stringFields := flag.String("string-fields", "", "")
	nameKey := flag.String("name-key", "", "")
	query := flag.String("query", "", "")
	flag.Parse()
	p := &parser.Parser{MetricName: "kafka_consumer", Strict: true, TagKeys: split(*tagKeys),
		StringFields: split(*stringFields), NameKey: *nameKey, Query: *query}
	if err := p.Init(); err != nil {
		panic(err)
	}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for sc.Scan() {
		payload, err := hex.DecodeString(sc.Text())
		if err != nil {
			panic(err)
		}
		metrics, err := p.Parse(payload)
		if err != nil {
			b, _ := json.Marshal(map[string]string{"error": err.Error()})
			fmt.Fprintf(out, "%s\n", b)
			continue
		}
		result := []map[string]interface{}{}
		for _, m := range metrics {
			fields := map[string][2]string{}
			for _, f := range m.FieldList() {
				switch v := f.Value.(type) {
				case float64:
					fields[f.Key] = [2]string{"f", strconv.FormatFloat(v, 'g', -1, 64)}
				case string:
					fields[f.Key] = [2]string{"s", v}
				case bool:
					fields[f.Key] = [2]string{"b", strconv.FormatBool(v)}
				default:
					fields[f.Key] = [2]string{"?", fmt.Sprint(v)}
				}
			}
			result = append(result, map[string]interface{}{"name": m.Name(), "tags": m.Tags(), "fields": fields})
		}
		b, _ := json.Marshal(map[string]interface{}{"metrics": result})
		fmt.Fprintf(out, "%s\n", b)
	}
}
"""


def telegraf_json_parser() -> Path:
    return build_go_program("telegraf-json-parser", PROGRAM)


KEYS = ["pressure", "temperature", "t", "tag", "site", "s", "str", "n", "name", "a", "b", "x", "é"]


def _value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.15:
        return {k: _value(rng, depth + 1) for k in rng.sample(KEYS, rng.randint(0, 3))}
    if depth < 3 and roll < 0.25:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return rng.choice(
        [
            rng.randint(-(10**6), 10**6),
            rng.uniform(-1e6, 1e6),
            rng.choice([0, 0.5, 1e21, 1e-7, 44, -0.0, 2**53 + 1]),
            rng.choice(["north", "", "a b", "ü"]),
            rng.random() < 0.5,
            None,
        ]
    )


def random_payloads(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    payloads = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.7:
            doc: Any = {k: _value(rng, 1) for k in rng.sample(KEYS, rng.randint(0, 6))}
        elif roll < 0.85:
            doc = [{k: _value(rng, 2) for k in rng.sample(KEYS, rng.randint(0, 3))} for _ in range(rng.randint(0, 3))]
        else:
            doc = _value(rng, 3)
        text = json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode()
        if rng.random() < 0.05:
            text = text[: max(0, len(text) - 2)]  # truncated: usually invalid
        if rng.random() < 0.05:
            text = b"\xef\xbb\xbf  " + text + b"\n"
        payloads.append(text)
    return payloads


def _ours(parser: JSONParser, payload: bytes) -> dict[str, Any]:
    try:
        metrics = parser.parse(payload)
    except ParseError as exc:
        return {"error": str(exc)}
    out = []
    for m in metrics:
        fields = {}
        for key, value in m.fields.items():
            if isinstance(value, bool):
                fields[key] = ["b", "true" if value else "false"]
            elif isinstance(value, float):
                fields[key] = ["f", value]
            else:
                fields[key] = ["s", value]
        out.append({"name": m.name, "tags": m.tags, "fields": fields})
    return {"metrics": out}


def _theirs(answer: dict[str, Any]) -> dict[str, Any]:
    if "error" in answer:
        return answer
    for metric in answer["metrics"]:
        for key, (kind, text) in metric["fields"].items():
            metric["fields"][key] = [kind, float(text) if kind == "f" else text]
    return answer


OPTION_SETS = {
    "defaults": ({}, []),
    "tags and strings": (
        {"tag_keys": ["t*", "site", "a_*"], "string_fields": ["s*", "name"]},
        ["-tag-keys=t*,site,a_*", "-string-fields=s*,name"],
    ),
    "name key": ({"name_key": "name", "string_fields": ["x"]}, ["-name-key=name", "-string-fields=x"]),
    "query": ({"query": "a"}, ["-query=a"]),
}


def _is_json(payload: bytes) -> bool:
    try:
        json.loads(payload.decode("utf-8-sig"))
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("option_set", list(OPTION_SETS))
def test_json_parser_gives_what_telegraf_gives(option_set: str) -> None:
    binary = telegraf_json_parser()
    options, flags = OPTION_SETS[option_set]
    payloads = random_payloads(2000, seed=len(option_set))
    result = subprocess.run(
        [str(binary), *flags], input="".join(p.hex() + "\n" for p in payloads).encode(), capture_output=True,
        timeout=120, check=True,
    )  # fmt: skip
    answers = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(answers) == len(payloads)
    parser = JSONParser("kafka_consumer", **options)
    mismatches, salvaged = [], 0
    for payload, answer in zip(payloads, answers, strict=True):
        ours, theirs = _ours(parser, payload), _theirs(answer)
        if ("error" in ours) != ("error" in theirs) or ("error" not in ours and ours != theirs):
            if "query" in options and not _is_json(payload) and ours == {"metrics": []}:
                # GJSON finds the path in the valid start of a broken document; tidepool (documented) reads a
                # broken document as null at any path
                salvaged += 1
                continue
            mismatches.append((payload, theirs, ours))
    errors = sum("error" in a for a in answers)
    assert 0 < errors < len(payloads)  # the sample holds both kinds
    assert mismatches == [], f"{len(mismatches)} of {len(payloads)} differ, e.g. {mismatches[:3]}"
    assert salvaged < len(payloads) // 50


VALUE_PROGRAM = r"""// Reads one hex-encoded payload per line, parses it with Telegraf's value parser, prints the field.
package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/influxdata/telegraf/plugins/parsers/value"
)

func main() {
	dataType := flag.String("type", "", "")
	flag.Parse()
	p := &value.Parser{DataType: *dataType, MetricName: "m"}
	if err := p.Init(); err != nil {
		panic(err)
	}
	sc := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for sc.Scan() {
		payload, _ := hex.DecodeString(sc.Text())
		metrics, err := p.Parse(payload)
		if err != nil {
			fmt.Fprintln(out, "ERR")
			continue
		}
		if len(metrics) == 0 {
			fmt.Fprintln(out, "NONE")
			continue
		}
		v, _ := metrics[0].GetField("value")
		var repr [2]string
		switch x := v.(type) {
		case int64:
			repr = [2]string{"i", strconv.FormatInt(x, 10)}
		case float64:
			if math.IsNaN(x) {
				repr = [2]string{"f", "nan"}
			} else {
				repr = [2]string{"f", strconv.FormatFloat(x, 'g', -1, 64)}
			}
		case bool:
			repr = [2]string{"b", strconv.FormatBool(x)}
		case string:
			repr = [2]string{"s", x}
		}
		b, _ := json.Marshal(repr)
		fmt.Fprintf(out, "%s\n", b)
	}
}
"""

VALUE_WORDS = [
    "42", "-7", "+3", "007", "1_000", "9223372036854775807", "9223372036854775808", "4.5", ".5", "5.", "1e3",
    "1E-3", "inf", "-Inf", "+infinity", "NaN", "nan", "0x1p-2", "0x10", "1e400", "abc", "true", "T", "FALSE", "1",
    "0", "yes", "", " ", "\x00", "\t", "é", "1,5",
]  # fmt: skip


@pytest.mark.parametrize("data_type", ["", "integer", "float", "long", "string", "boolean", "auto_integer",
                                       "auto_float", "base64"])  # fmt: skip
def test_value_parser_gives_what_telegraf_gives(data_type: str) -> None:
    from tidepool.agent.options import PluginOptions
    from tidepool.agent.plugins.parsers.value import make_value_parser

    binary = build_go_program("telegraf-value-parser", VALUE_PROGRAM)
    rng = random.Random(11)
    payloads = [w.encode() for w in VALUE_WORDS]
    payloads += [" ".join(rng.choice(VALUE_WORDS) for _ in range(rng.randint(1, 3))).encode() for _ in range(300)]
    result = subprocess.run(
        [str(binary), f"-type={data_type}"], input="".join(p.hex() + "\n" for p in payloads).encode(),
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    answers = result.stdout.decode().splitlines()
    assert len(answers) == len(payloads)
    table = {"data_type": data_type} if data_type else {}
    parser = make_value_parser(PluginOptions(table, "inputs.x"), "m")
    mismatches = []
    for payload, answer in zip(payloads, answers, strict=True):
        ours = _value_answer(parser, payload)
        if answer.startswith('["f"') and ours.startswith('["f"'):
            same = _float_of(answer) == _float_of(ours) or (answer, ours) == ('["f","nan"]', '["f","nan"]')
        else:
            same = answer == ours
        if not same:
            mismatches.append((payload, answer, ours))
    assert mismatches == [], f"{len(mismatches)} of {len(payloads)} differ, e.g. {mismatches[:5]}"


def _float_of(answer: str) -> float:
    return float(json.loads(answer)[1])


def _value_answer(parser: Any, payload: bytes) -> str:
    """tidepool's result in the Go program's notation."""
    try:
        metrics = parser.parse(payload)
    except ParseError:
        return "ERR"
    if not metrics:
        return "NONE"
    value = metrics[0].fields["value"]
    if isinstance(value, bool):
        pair = ["b", "true" if value else "false"]
    elif isinstance(value, int):
        pair = ["i", str(value)]
    elif isinstance(value, float):
        pair = ["f", "nan" if value != value else repr(value)]
    else:
        pair = ["s", value]
    return json.dumps(pair, separators=(",", ":"), ensure_ascii=False)
