"""HTTP ingest and query benchmark of `tidepool db`: TSBS cpu-only lines over `/api/v1/write`, then four queries.

    python -m bench.db_http [--hosts 100] [--hours 28] [--batch 5000] [--connections 1,2,4] [--query-runs 5]

For each connection count a fresh `tidepool db` is started (as a subprocess, like a user would run it) and the whole
data set is posted in batches of `--batch` lines over that many keep-alive connections; then the four queries run
over `/api/v1/sql` against the last server. Printed: lines/s, values/s, the server's and this client's peak RSS, and
the median query times. The peers (InfluxDB 1.x, VictoriaMetrics) are measured by the benchmark suite, not here.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import itertools
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.common import TSBS_FIELDS, TSBS_INTERVAL_NS, TSBS_START_NS, peak_rss_mb, print_table, tsbs_cpu_lines

AUTH = {"Authorization": "Basic " + base64.b64encode(b"root:").decode()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DbProcess:
    """`python -m tidepool db` on a fresh data directory and a free port."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tidepool",
                "--log-level",
                "warning",
                "db",
                "--data-dir",
                str(data_dir),
                "--listen",
                f"127.0.0.1:{self.port}",
            ],
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/ping", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.process.kill()
        raise RuntimeError("tidepool db did not start")

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def query(self, sql: str) -> list[dict[str, object]]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v1/sql?db=public",
            data=sql.encode(),
            headers={**AUTH, "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=600) as response:
            body = response.read()
        return list(json.loads(body)) if body else []

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()


def make_batches(hosts: int, points: int, batch_lines: int) -> list[bytes]:
    lines = tsbs_cpu_lines(hosts, points)
    batches = []
    while chunk := list(itertools.islice(lines, batch_lines)):
        batches.append("\n".join(chunk).encode())
    return batches


def post_all(port: int, batches: list[bytes], connections: int) -> float:
    """Seconds to POST every batch over `connections` keep-alive connections (raises on any non-200)."""
    next_index = itertools.count()
    errors: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        try:
            while not errors:
                i = next(next_index)
                if i >= len(batches):
                    return
                conn.request("POST", "/api/v1/write?db=public", body=batches[i], headers=AUTH)
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    errors.append(f"batch {i}: {response.status} {body[:200]!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(errors[0])
    return elapsed


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def queries(points: int) -> dict[str, str]:
    """The four TSBS-style questions in tidepool's (CnosDB's DataFusion) SQL dialect."""
    end = TSBS_START_NS + points * TSBS_INTERVAL_NS
    day_end = _iso(min(end, TSBS_START_NS + 24 * 3600 * 10**9))
    eight_end = _iso(min(end, TSBS_START_NS + 8 * 3600 * 10**9))
    start = _iso(TSBS_START_NS)
    return {
        "last point per host": "SELECT DISTINCT ON (hostname) * FROM cpu ORDER BY hostname, time DESC",
        "hourly mean, 1 host, 1 day": (
            "SELECT date_bin(INTERVAL '1 hour', time) AS hour, avg(usage_user) AS mean FROM cpu "
            f"WHERE hostname = 'host_0' AND time >= '{start}' AND time < '{day_end}' GROUP BY hour ORDER BY hour"
        ),
        "max per host over 8 h": (
            "SELECT hostname, max(usage_user) AS max FROM cpu "
            f"WHERE time >= '{start}' AND time < '{eight_end}' GROUP BY hostname ORDER BY hostname"
        ),
        "count(*)": "SELECT count(*) AS n FROM cpu",
    }


def timed(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    timings, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--hours", type=float, default=28.0, help="hours of data at 10 s per point per host")
    parser.add_argument("--batch", type=int, default=5000, help="lines per HTTP request")
    parser.add_argument("--connections", default="1,2,4", help="comma-separated connection counts")
    parser.add_argument("--query-runs", type=int, default=5)
    args = parser.parse_args(argv)

    points = int(args.hours * 3600 * 10**9 // TSBS_INTERVAL_NS)
    connection_counts = [int(c) for c in args.connections.split(",")]
    print(f"generating {args.hosts * points:,} lines ({args.hosts} hosts × {points} points) ...", flush=True)
    batches = make_batches(args.hosts, points, args.batch)
    lines = args.hosts * points
    values = lines * len(TSBS_FIELDS)
    payload_mb = sum(len(b) for b in batches) / 2**20

    ingest_rows: list[list[object]] = []
    query_rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="tidepool-bench-") as tmp:
        server = None
        for n, connections in enumerate(connection_counts):
            if server is not None:
                server.stop()
            server = DbProcess(Path(tmp) / f"db-{n}")
            seconds = post_all(server.port, batches, connections)
            stored = int(server.query("SELECT count(*) AS n FROM cpu")[0]["n"])  # type: ignore[call-overload]
            if stored != lines:
                raise RuntimeError(f"stored {stored} rows, wrote {lines}")
            ingest_rows.append(
                [
                    connections,
                    f"{lines:,}",
                    f"{payload_mb:.0f}",
                    f"{seconds:.2f}",
                    f"{lines / seconds:,.0f}",
                    f"{values / seconds:,.0f}",
                    f"{server.peak_rss_mb():.0f}",
                ]
            )
            print(f"  {connections} connection(s): {lines / seconds:,.0f} lines/s", flush=True)
        assert server is not None
        for name, sql in queries(points).items():
            median, result = timed(lambda sql=sql: server.query(sql), args.query_runs)  # type: ignore[misc]
            query_rows.append([name, f"{median * 1000:.1f}", len(result)])  # type: ignore[arg-type]
        server_rss = server.peak_rss_mb()
        server.stop()

    print()
    print(f"HTTP ingest, TSBS cpu-only, batches of {args.batch} lines (server: tidepool db subprocess)")
    print_table(
        ["connections", "lines", "MiB sent", "seconds", "lines/s", "values/s", "server peak RSS MiB"], ingest_rows
    )
    print()
    print(f"queries over HTTP (JSON), median of {args.query_runs}, server peak RSS {server_rss:.0f} MiB")
    print_table(["query", "median ms", "rows"], query_rows)
    print()
    print(f"client (this process) peak RSS: {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
