"""Database engine benchmark, TSBS cpu-only shape, through the engine directly (no HTTP).

Measures: ingest rate (line-protocol bodies of --batch lines, as an HTTP client would post them), on-disk size
after flush + compaction, and the four TSBS-style queries (median of --runs). Prints a table with peak RSS.

    .venv/bin/python bench/db_engine.py                      # 100 hosts × 28 h = 1.008 M lines
    .venv/bin/python bench/db_engine.py --hosts 10 --hours 2  # a quick run
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import TSBS_INTERVAL_NS, TSBS_START_NS, best_of, peak_rss_mb, print_table, tsbs_cpu_lines
from tidepool.db.engine import Engine, EngineConfig

HOUR_NS = 3600 * 10**9


def _ts(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns / 1e9))


def _write_bodies(path: Path, lines: Iterator[str], batch: int) -> list[int]:
    sizes = []
    with open(path, "wb") as out:
        chunk: list[str] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) == batch:
                sizes.append(out.write("\n".join(chunk).encode()))
                chunk = []
        if chunk:
            sizes.append(out.write("\n".join(chunk).encode()))
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--hours", type=float, default=28.0)
    parser.add_argument("--batch", type=int, default=10_000, help="lines per write request")
    parser.add_argument("--fsync", choices=["per-write", "interval", "off"], default="interval")
    parser.add_argument("--runs", type=int, default=3, help="runs per query (median reported)")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a temporary directory")
    args = parser.parse_args()

    points_per_host = int(args.hours * HOUR_NS // TSBS_INTERVAL_NS)

    with tempfile.TemporaryDirectory(prefix="tidepool-bench-db-") as tmp:
        # The request bodies go to a file first, so that neither generating them nor holding them in memory
        # counts in the ingest time or the peak RSS; reading them back does count (it is small).
        bodies_path = Path(tmp) / "bodies.lp"
        sizes = _write_bodies(bodies_path, tsbs_cpu_lines(args.hosts, points_per_host), args.batch)
        raw_mb = sum(sizes) / 2**20
        data_dir = args.data_dir or Path(tmp) / "db"
        engine = Engine.open(data_dir, EngineConfig(fsync=args.fsync))
        start = time.perf_counter()
        points = 0
        with open(bodies_path, "rb") as bodies:
            for size in sizes:
                points += engine.write_lines("cnosdb", "public", bodies.read(size))
        ingest_s = time.perf_counter() - start
        start = time.perf_counter()
        engine.flush()
        engine.compact(force=True)
        settle_s = time.perf_counter() - start
        stats = engine.stats()
        on_disk = sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())

        day_start = TSBS_START_NS
        day_end = min(TSBS_START_NS + 24 * HOUR_NS, TSBS_START_NS + points_per_host * TSBS_INTERVAL_NS)
        eight_h_end = TSBS_START_NS + 8 * HOUR_NS
        queries = {
            "lastpoint per host": "SELECT hostname, max(time) AS t, last(time, usage_user) AS usage_user, "
            "last(time, usage_system) AS usage_system FROM cpu GROUP BY hostname",
            "hourly mean, 1 host, 1 day": "SELECT date_bin(INTERVAL '1 hour', time) AS hour, avg(usage_user) AS u "
            f"FROM cpu WHERE hostname = 'host_1' AND time >= '{_ts(day_start)}' AND time < '{_ts(day_end)}' "
            "GROUP BY hour ORDER BY hour",
            "max all hosts, 8 h": f"SELECT max(usage_user) AS m FROM cpu WHERE time >= '{_ts(TSBS_START_NS)}' "
            f"AND time < '{_ts(eight_h_end)}'",
            "count(*)": "SELECT count(*) AS n FROM cpu",
        }
        results: list[list[object]] = [
            ["lines ingested", f"{points:,}", ""],
            ["ingest", f"{points / ingest_s:,.0f} lines/s", f"{ingest_s:.2f} s, {raw_mb / ingest_s:.1f} MB/s of LP"],
            ["flush + compaction", f"{settle_s:.2f} s", f"{stats['parquet_files']} files"],
            ["on disk", f"{on_disk / 2**20:.2f} MB", f"line protocol was {raw_mb:.1f} MB"],
        ]
        for name, sql in queries.items():
            table = engine.execute("cnosdb", "public", sql).to_table()
            median, _ = best_of(args.runs, lambda sql=sql: engine.execute("cnosdb", "public", sql).to_table())
            results.append([f"query: {name}", f"{median * 1000:.1f} ms", f"{table.num_rows} rows"])
        engine.close()
    results.append(["peak RSS", f"{peak_rss_mb():.0f} MB", ""])
    print(f"tidepool db engine, TSBS cpu-only: {args.hosts} hosts × {args.hours:g} h, fsync={args.fsync}")
    print_table(["measure", "value", "notes"], results)


if __name__ == "__main__":
    main()
