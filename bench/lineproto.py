"""Line-protocol parse speed: tidepool.lineproto.parse against a straightforward per-line str.split parser.

Usage: python bench/lineproto.py [--lines N] [--runs R]. Prints lines/s of both, the ratio, and peak RSS.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import best_of, peak_rss_mb, print_table, tsbs_cpu_lines
from tidepool.lineproto import parse


def naive_parse(body: bytes) -> list[tuple[str, dict[str, str], dict[str, object], int]]:
    """The baseline: split each line on spaces, commas and '=', type each field value. No escapes."""
    out = []
    for line in body.decode().split("\n"):
        if not line or line.startswith("#"):
            continue
        key, fields_text, ts = line.split(" ")
        name, *tag_pairs = key.split(",")
        tags = dict(pair.split("=", 1) for pair in tag_pairs)
        fields: dict[str, object] = {}
        for pair in fields_text.split(","):
            k, v = pair.split("=", 1)
            if v.endswith("i"):
                fields[k] = int(v[:-1])
            elif v in ("t", "true", "T", "True", "TRUE"):
                fields[k] = True
            elif v in ("f", "false", "F", "False", "FALSE"):
                fields[k] = False
            elif v.startswith('"'):
                fields[k] = v[1:-1]
            else:
                fields[k] = float(v)
        out.append((name, tags, fields, int(ts)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=100_000, help="lines per batch (TSBS cpu-only shape)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    hosts = 100
    body = "\n".join(tsbs_cpu_lines(hosts, max(1, args.lines // hosts))).encode()
    lines = body.count(b"\n") + 1
    parse(body)  # warm: imports and kernels
    naive_s, _ = best_of(args.runs, lambda: naive_parse(body))
    fast_s, _ = best_of(args.runs, lambda: parse(body))
    rows = [
        ["naive str.split per line", lines, f"{naive_s * 1000:.0f}", f"{lines / naive_s:,.0f}", "1.00"],
        [
            "tidepool.lineproto.parse",
            lines,
            f"{fast_s * 1000:.0f}",
            f"{lines / fast_s:,.0f}",
            f"{naive_s / fast_s:.2f}",
        ],
    ]
    print(f"TSBS cpu-only lines, {len(body) / 1e6:.1f} MB body, median of {args.runs} runs")
    print_table(["parser", "lines", "ms", "lines/s", "× naive"], rows)
    print(f"peak RSS: {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
