"""Shared bits of the benchmarks: the TSBS cpu-only data shape, timing, peak RSS, and table printing."""

from __future__ import annotations

import random
import resource
import time
from collections.abc import Callable, Iterator

TSBS_TAGS = (
    "region=eu-west-1,datacenter=eu-west-1a,rack={rack},os=Ubuntu16.04LTS,arch=x64,team=NYC,"
    "service={service},service_version={version},service_environment=production"
)
TSBS_FIELDS = (
    "usage_user",
    "usage_system",
    "usage_idle",
    "usage_nice",
    "usage_iowait",
    "usage_irq",
    "usage_softirq",
    "usage_steal",
    "usage_guest",
    "usage_guest_nice",
)
TSBS_START_NS = 1451606400000000000  # 2016-01-01T00:00:00Z, as TSBS uses
TSBS_INTERVAL_NS = 10 * 10**9


def tsbs_cpu_lines(hosts: int = 100, points_per_host: int = 10080, seed: int = 42) -> Iterator[str]:
    """TSBS cpu-only lines, time-major (every host at t, then every host at t+10 s), random-walk values.

    10 tags (hostname + 9) and 10 float fields per line; 100 hosts × 10080 points = 28 h = 1.008 M lines.
    """
    rng = random.Random(seed)
    heads = [
        f"cpu,hostname=host_{h},"
        + TSBS_TAGS.format(rack=rng.randint(0, 99), service=rng.randint(0, 19), version=rng.randint(0, 1))
        for h in range(hosts)
    ]
    values = [[rng.uniform(0, 100) for _ in TSBS_FIELDS] for _ in range(hosts)]
    for step in range(points_per_host):
        ts = TSBS_START_NS + step * TSBS_INTERVAL_NS
        for h in range(hosts):
            row = values[h]
            for i in range(len(row)):
                row[i] = min(100.0, max(0.0, row[i] + rng.uniform(-1, 1)))
            fields = ",".join(f"{name}={value:.2f}" for name, value in zip(TSBS_FIELDS, row, strict=True))
            yield f"{heads[h]} {fields} {ts}"


def peak_rss_mb() -> float:
    """Peak resident set size of this process (and its waited-for children, if any), in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return own / 1024


def best_of(runs: int, fn: Callable[[], object]) -> tuple[float, list[float]]:
    """Run `fn` `runs` times; return (median seconds, all timings)."""
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - start)
    ordered = sorted(timings)
    return ordered[len(ordered) // 2], timings


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    """A plain fixed-width table on stdout."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
