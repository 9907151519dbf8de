"""Counters of the HTTP API and their Prometheus text rendering for `GET /metrics`.

The HTTP layer counts requests, bytes, points, errors and latencies per API; the engine's own counters
(`Engine.stats()`: WAL and Parquet sizes, memtable rows, ...) are exported beside them as `tidepool_db_<name>`.
Names are tidepool's own (CnosDB's metrics carry tenant/user/host labels that mean nothing on one machine).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping

# Upper bounds (seconds) of the latency histogram buckets.
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """A Prometheus histogram: cumulative bucket counts, sum and count."""

    def __init__(self) -> None:
        self.buckets = [0] * len(LATENCY_BUCKETS)
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.total += seconds
        self.count += 1
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.buckets[i] += 1


class HttpMetrics:
    """Thread-safe counters keyed by API name (`api_v1_write`, `api_v1_sql`, `write`, `api_v1_ping`, ...)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[str, int] = defaultdict(int)
        self.errors: dict[str, int] = defaultdict(int)
        self.data_in: dict[str, int] = defaultdict(int)
        self.data_out: dict[str, int] = defaultdict(int)
        self.points_written = 0
        self.latency: dict[str, Histogram] = defaultdict(Histogram)

    def record(self, api: str, *, seconds: float, bytes_in: int, bytes_out: int, failed: bool, points: int = 0) -> None:
        with self._lock:
            self.requests[api] += 1
            if failed:
                self.errors[api] += 1
            self.data_in[api] += bytes_in
            self.data_out[api] += bytes_out
            self.points_written += points
            self.latency[api].observe(seconds)

    def render(self, engine_stats: Mapping[str, int | float]) -> str:
        """Prometheus text exposition format 0.0.4."""
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        with self._lock:
            for name, help_text, counts in (
                ("tidepool_http_requests_total", "HTTP requests answered, by API.", self.requests),
                ("tidepool_http_errors_total", "HTTP requests answered with an error status, by API.", self.errors),
                ("tidepool_http_data_in_bytes_total", "Request body bytes received, by API.", self.data_in),
                ("tidepool_http_data_out_bytes_total", "Response body bytes sent, by API.", self.data_out),
            ):
                family(name, "counter", help_text)
                for api, n in sorted(counts.items()):
                    out.append(f'{name}{{api="{api}"}} {n}')
            family("tidepool_http_points_written_total", "counter", "Points accepted by line-protocol writes.")
            out.append(f"tidepool_http_points_written_total {self.points_written}")
            family("tidepool_http_request_duration_seconds", "histogram", "Time to answer a request, by API.")
            for api, hist in sorted(self.latency.items()):
                for bound, n in zip(LATENCY_BUCKETS, hist.buckets, strict=True):
                    out.append(f'tidepool_http_request_duration_seconds_bucket{{api="{api}",le="{bound}"}} {n}')
                out.append(f'tidepool_http_request_duration_seconds_bucket{{api="{api}",le="+Inf"}} {hist.count}')
                out.append(f'tidepool_http_request_duration_seconds_sum{{api="{api}"}} {hist.total:.6f}')
                out.append(f'tidepool_http_request_duration_seconds_count{{api="{api}"}} {hist.count}')
        for key, value in sorted(engine_stats.items()):
            name = "tidepool_db_" + "".join(c if c.isalnum() or c == "_" else "_" for c in key)
            family(name, "gauge", f"Engine statistic {key}.")
            out.append(f"{name} {value}")
        return "\n".join(out) + "\n"
