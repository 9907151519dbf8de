"""The benchmark suite: each part starts tidepool and its real peers on loopback and runs one workload on all of them.

Parts (each runnable alone, `python -m bench <part>`):
- db: TSBS cpu-only ingest over HTTP (1/2/4 connections), on-disk size after flush, the four queries — tidepool db,
  InfluxDB 1.x, VictoriaMetrics.
- broker: produce and consume ~100 B and 1 KB messages with confluent-kafka and kcat — tidepool broker, tansu,
  Apache Kafka.
- groups: consumer group join time (subscribe → first assignment) with confluent-kafka, same three brokers.
- pipeline: topic → agent → db messages/s and freshness at fixed rates — tidepool alone, and tidepool's agent and db
  with Apache Kafka as the broker.

Every part records its peers' versions, the machine and its load, and for each run the client's and the servers'
CPU share beside the servers' peak RSS; a system that fails is recorded as failed and the others go on.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

from bench.common import TSBS_FIELDS, TSBS_INTERVAL_NS, TSBS_START_NS, tsbs_cpu_lines
from bench.peers.base import PeerUnavailable, Profiler, ServerProcess, summarize_stacks
from bench.report import DEFAULT_SCALE, FASTEST, Measurement, PartResult, Profile

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"

# Full sizes from issue 9; `--scale` multiplies every count.
TSBS_HOSTS = 100
TSBS_POINTS_FULL = 10080  # 28 h at 10 s
BATCH_LINES = 5000
SMALL_MESSAGES_FULL = 1_000_000
LARGE_MESSAGES_FULL = 300_000


@dataclass
class Options:
    scale: float = DEFAULT_SCALE
    runs: int = 3
    query_runs: int = 10
    connections: tuple[int, ...] = (1, 2, 4)
    work_dir: Path | None = None
    results_dir: Path = RESULTS_DIR
    only: tuple[str, ...] = ()  # system names to run (empty: all)
    profile: bool = False  # add an unmeasured run of tidepool's slow paths under py-spy

    def wants(self, system: str) -> bool:
        return not self.only or any(system.lower().startswith(o.lower()) for o in self.only)


@dataclass
class Recorder:
    """What a part accumulates while it runs; `result()` turns it into the saved PartResult."""

    part: str
    title: str
    options: Options
    started: float = field(default_factory=time.time)
    measurements: list[Measurement] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    targets: list[tuple[str, str, str, float]] = field(default_factory=list)
    profiles: dict[str, Profile] = field(default_factory=dict)
    load_before: str = field(default_factory=lambda: load_average())

    def add(self, m: Measurement) -> None:
        self.measurements.append(m)
        print(
            f"  {m.workload:<40} {m.system:<16} median {m.median:,.1f} {m.metric} "
            f"(min {m.low:,.1f}, max {m.high:,.1f}; RSS {max(m.server_rss_mb, default=0):.0f} MiB, "
            f"client CPU {statistics.median(m.client_cpu_pct) if m.client_cpu_pct else 0:.0f} %)",
            flush=True,
        )

    def fail(self, what: str, exc: BaseException) -> None:
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        self.failures.append(f"{what}: {reason}")
        print(f"  FAILED {what}: {reason}", flush=True)
        if not isinstance(exc, PeerUnavailable | RuntimeError):
            traceback.print_exc()

    def result(self) -> PartResult:
        machine = machine_description()
        machine["load average (1 min, 5 min) before / after"] = f"{self.load_before} / {load_average()}"
        return PartResult(
            part=self.part,
            title=self.title,
            started=datetime.fromtimestamp(self.started, UTC).strftime("%Y-%m-%d %H:%M"),
            duration_s=time.time() - self.started,
            scale=self.options.scale,
            runs=self.options.runs,
            machine=machine,
            versions=self.versions,
            measurements=self.measurements,
            failures=self.failures,
            notes=self.notes,
            targets=self.targets,
            profiles=self.profiles,
        )

    @contextmanager
    def profiling(self, what: str, *servers: ServerProcess) -> Iterator[None]:
        """py-spy on `servers` while the block runs; the hottest frames of each go into the result."""
        profilers = [Profiler(s, Path(s.work_dir) / "profile.txt") for s in servers]
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            for server, profiler in zip(servers, profilers, strict=True):
                samples, frames = summarize_stacks(profiler.stop().read_text(errors="replace"))
                self.profiles[f"{server.name} during {what}"] = Profile(samples, frames, seconds)
                print(f"  profile of {server.name}: {frames[:3]}", flush=True)


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}, {five:.2f}"


def machine_description() -> dict[str, str]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        mem_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        mem_kb = 0
    return {
        "CPU": f"{os.cpu_count()} × {model}",
        "memory": f"{mem_kb / 1024 / 1024:.0f} GiB",
        "kernel": platform.release(),
        "Python": platform.python_version(),
    }


class Usage:
    """CPU used by this client process (and its waited-for children, e.g. kcat) and by a server, over wall time."""

    def __init__(self, server: ServerProcess | ProcessGroup | None) -> None:
        self.server = server
        self.wall0 = time.perf_counter()
        self.client0 = self._client_cpu()
        self.server0 = server.cpu_seconds if server else 0.0

    @staticmethod
    def _client_cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    def finish(self) -> tuple[float, float, float]:
        """(wall seconds, client CPU % of one core, server CPU % of one core)."""
        wall = time.perf_counter() - self.wall0
        client = self._client_cpu() - self.client0
        server = (self.server.cpu_seconds - self.server0) if self.server else 0.0
        return wall, 100 * client / wall, 100 * server / wall


# ---------------------------------------------------------------------------------------------------------- db part


class DbPeer(Protocol):
    def write_url(self) -> str: ...


@dataclass(frozen=True)
class TsbsWindow:
    """The time range of the generated data set and the query windows inside it (all ns, end exclusive)."""

    points: int
    hosts: int = TSBS_HOSTS
    start: int = TSBS_START_NS

    @property
    def end(self) -> int:
        return self.start + self.points * TSBS_INTERVAL_NS

    @property
    def lines(self) -> int:
        return self.points * self.hosts

    def upto(self, hours: int) -> int:
        """The end of a query window of `hours` from the start (nominal: past the data's end at small scales)."""
        return self.start + hours * 3600 * 10**9


def tsbs_batches(points: int, hosts: int = TSBS_HOSTS, batch_lines: int = BATCH_LINES) -> list[bytes]:
    """The TSBS cpu-only data set as HTTP bodies of `batch_lines` lines each."""
    batches = []
    lines = tsbs_cpu_lines(hosts, points)
    while chunk := list(itertools.islice(lines, batch_lines)):
        batches.append("\n".join(chunk).encode())
    return batches


def post_batches(url: str, headers: dict[str, str], batches: list[bytes], connections: int) -> list[str]:
    """POST every batch, spread over `connections` keep-alive connections; returns the errors (empty if all 2xx)."""
    parts = urlsplit(url)
    path = f"{parts.path}?{parts.query}" if parts.query else parts.path
    next_index = itertools.count()
    errors: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=300)
        try:
            while not errors:
                i = next(next_index)
                if i >= len(batches):
                    return
                conn.request("POST", path, body=batches[i], headers={"Content-Type": "text/plain", **headers})
                response = conn.getresponse()
                body = response.read()
                if response.status >= 300:
                    errors.append(f"batch {i}: HTTP {response.status} {body[:200]!r}")
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"connection error: {exc}")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


class Answer(NamedTuple):
    """What a query returned: its rows (series × points for VictoriaMetrics) and the sum of its usage_user values
    (for count(*): the count), so that the systems' answers can be compared, not only timed."""

    rows: int
    total: float


Query = Callable[[], Answer]


@dataclass
class DbSystem:
    """One database under test: how to start it, write to it, and ask it the four questions."""

    name: str
    start: Callable[[Path | None], Any]
    queries: Callable[[Any, TsbsWindow], dict[str, Query]]
    count_query: str  # the query name whose answer is the number of rows stored
    headers: Callable[[Any], dict[str, str]] = lambda _server: {}
    full: bool = True  # False: a variant measured on 1-connection ingest only (no size, no queries)


QUERY_NAMES = ("last point per host", "hourly mean, 1 host, 1 day", "max per host over 8 h", "count(*)")


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tidepool_queries(server: Any, w: TsbsWindow) -> dict[str, Query]:
    """SQL in tidepool's (CnosDB's DataFusion) dialect."""

    def summed(sql: str, column: str) -> Query:
        def run() -> Answer:
            rows = json.loads(server.query(sql))
            return Answer(len(rows), sum(float(r[column]) for r in rows))

        return run

    def count() -> Answer:
        (row,) = json.loads(server.query("SELECT count(*) AS n FROM cpu"))
        return Answer(1, float(row["n"]))

    day, eight = (_iso(w.start), _iso(w.upto(24))), (_iso(w.start), _iso(w.upto(8)))
    return {
        QUERY_NAMES[0]: summed(
            "SELECT hostname, max(time) AS time, "
            + ", ".join(f"last(time, {f}) AS {f}" for f in TSBS_FIELDS)
            + " FROM cpu GROUP BY hostname",
            "usage_user",
        ),
        QUERY_NAMES[1]: summed(
            "SELECT date_bin(INTERVAL '1 hour', time) AS hour, avg(usage_user) AS mean FROM cpu "
            f"WHERE hostname = 'host_0' AND time >= '{day[0]}' AND time < '{day[1]}' GROUP BY hour ORDER BY hour",
            "mean",
        ),
        QUERY_NAMES[2]: summed(
            "SELECT hostname, max(usage_user) AS max FROM cpu "
            f"WHERE time >= '{eight[0]}' AND time < '{eight[1]}' GROUP BY hostname ORDER BY hostname",
            "max",
        ),
        QUERY_NAMES[3]: count,
    }


def influx_queries(server: Any, w: TsbsWindow) -> dict[str, Query]:
    """InfluxQL; rows counted over all returned series."""

    def summed(q: str, column: str) -> Query:
        def run() -> Answer:
            series = json.loads(server.query(q))["results"][0].get("series", [])
            rows = [(s["columns"].index(column), v) for s in series for v in s["values"]]
            return Answer(len(rows), sum(float(v[i]) for i, v in rows))

        return run

    def count() -> Answer:
        result = json.loads(server.query("SELECT count(usage_user) FROM cpu"))["results"][0]
        return Answer(1, float(result["series"][0]["values"][0][1]))

    day, eight = (_iso(w.start), _iso(w.upto(24))), (_iso(w.start), _iso(w.upto(8)))
    return {
        QUERY_NAMES[0]: summed('SELECT * FROM cpu GROUP BY "hostname" ORDER BY time DESC LIMIT 1', "usage_user"),
        QUERY_NAMES[1]: summed(
            f"SELECT mean(usage_user) FROM cpu WHERE hostname = 'host_0' AND time >= '{day[0]}' "
            f"AND time < '{day[1]}' GROUP BY time(1h) fill(none)",
            "mean",
        ),
        QUERY_NAMES[2]: summed(
            f"SELECT max(usage_user) FROM cpu WHERE time >= '{eight[0]}' AND time < '{eight[1]}' GROUP BY hostname",
            "max",
        ),
        QUERY_NAMES[3]: count,
    }


def victoria_queries(server: Any, w: TsbsWindow) -> dict[str, Query]:
    """MetricsQL. A window `[d]` at time t covers (t−d, t]; evaluating at `end − 1 s` makes it the same samples as
    SQL's [start, end) because samples sit on whole 10 s steps. Rows: series × points (one field per series)."""
    seconds = 10**9
    last_s = (w.end - TSBS_INTERVAL_NS) // seconds
    span_s = (w.end - w.start) // seconds

    def summed(q: str, **params: str) -> Query:
        def run() -> Answer:
            result = json.loads(server.query(q, **params))["data"]["result"]
            rows = sum(len(r["values"]) if "values" in r else 1 for r in result)
            user = [r for r in result if r["metric"].get("__name__", "cpu_usage_user") == "cpu_usage_user"]
            points = [p for r in user for p in (r["values"] if "values" in r else [r["value"]])]
            return Answer(rows, sum(float(v) for _, v in points))

        return run

    def count() -> Answer:
        data = json.loads(server.query(f"sum(count_over_time(cpu_usage_user[{span_s}s]))", time=str(last_s)))
        return Answer(1, float(data["data"]["result"][0]["value"][1]))

    day_end_s, eight_end_s = w.upto(24) // seconds, w.upto(8) // seconds
    eight_s = eight_end_s - w.start // seconds
    return {
        QUERY_NAMES[0]: summed(f'last_over_time({{__name__=~"cpu_.*"}}[{span_s}s])', time=str(last_s)),
        QUERY_NAMES[1]: summed(
            'avg_over_time(cpu_usage_user{hostname="host_0"}[1h])',
            start=str(w.start // seconds + 3600 - 1),
            end=str(day_end_s - 1),
            step="3600",
        ),
        QUERY_NAMES[2]: summed(f"max_over_time(cpu_usage_user[{eight_s}s])", time=str(eight_end_s - 1)),
        QUERY_NAMES[3]: count,
    }


def compare_answers(answers: dict[str, dict[str, Answer]]) -> list[str]:
    """One line per query whose usage_user sums differ between systems (relative 1e-6), naming each system's sum."""
    out = []
    for query in QUERY_NAMES:
        given = {system: a[query] for system, a in answers.items() if query in a}
        totals = [a.total for a in given.values()]
        if len(totals) > 1 and max(totals) - min(totals) > 1e-6 * max(abs(t) for t in totals):
            sums = ", ".join(f"{system} {a.total:,.4f}" for system, a in given.items())
            out.append(f"answers to {query!r} differ: {sums}")
    return out


def db_systems() -> list[DbSystem]:
    from bench.peers.influxdb import InfluxDB
    from bench.peers.tidepool import TidepoolDb
    from bench.peers.victoriametrics import VictoriaMetrics

    return [
        DbSystem("tidepool db", TidepoolDb, tidepool_queries, QUERY_NAMES[3], lambda s: s.write_headers()),
        DbSystem(
            "tidepool db (fsync per write)",
            lambda work_dir: TidepoolDb(work_dir, "--fsync=per-write"),
            tidepool_queries,
            QUERY_NAMES[3],
            lambda s: s.write_headers(),
            full=False,
        ),
        DbSystem("InfluxDB", InfluxDB, influx_queries, QUERY_NAMES[3]),
        DbSystem("VictoriaMetrics", VictoriaMetrics, victoria_queries, QUERY_NAMES[3]),
    ]


def part_db(opts: Options) -> PartResult:
    rec = Recorder("db", "Database: TSBS cpu-only ingest, on-disk size, queries", opts)
    points = max(1, round(TSBS_POINTS_FULL * opts.scale))
    window = TsbsWindow(points)
    print(f"db: generating {window.lines:,} TSBS cpu-only lines ({points} points × {TSBS_HOSTS} hosts)", flush=True)
    batches = tsbs_batches(points)
    body_mb = sum(len(b) for b in batches) / 1e6
    rec.notes += [
        f"Data: TSBS cpu-only shape, {TSBS_HOSTS} hosts × {points:,} points at 10 s = {window.lines:,} lines "
        f"({window.lines * 10:,} values, {body_mb:.0f} MB of line protocol) in batches of {BATCH_LINES:,} lines "
        "over HTTP; a fresh server and data dir for every run.",
        "Ingest is timed from the first request to the last acknowledgement, and every run is then checked with "
        "the system's own count (it must equal the lines sent); CPU columns are percent of one core "
        "over that time (client = the Python load generator, server = the server's process tree).",
        "Each database at its default durability: tidepool db fsyncs its WAL every 100 ms (`--fsync interval`), "
        "InfluxDB fsyncs its WAL on every write (wal-fsync-delay 0), VictoriaMetrics buffers about a second in "
        "memory before writing. The row *tidepool db (fsync per write)* is tidepool with `--fsync per-write` "
        "(group-committed fsync before each acknowledgement), the closest match to InfluxDB's setting.",
        "On-disk size: bytes allocated under the data dir (as `du`) after a flush — VictoriaMetrics "
        "`/internal/force_flush` + `force_merge`, InfluxDB with its cache snapshotted after 2 s cold; every system "
        "is then left until its data dir stops changing for 6 s.",
        f"Queries: warm (one untimed execution first), median of {opts.query_runs} executions over HTTP, each "
        "system in its own language: SQL (tidepool), InfluxQL (InfluxDB), MetricsQL (VictoriaMetrics). The "
        "result row counts are compared; VictoriaMetrics stores one series per field, so its last-point answer "
        "has 10 series per host where the others have one row with 10 fields.",
        "Last point per host in tidepool is CnosDB's idiom, `last(time, field)` for each field grouped by host; "
        "`SELECT DISTINCT ON (hostname) * … ORDER BY hostname, time DESC`, which also returns the tags, took about "
        "3× as long in a trial at full scale. InfluxDB: `SELECT * … GROUP BY hostname ORDER BY time DESC LIMIT 1`; "
        "VictoriaMetrics: `last_over_time` over the whole span.",
    ]
    rec.targets += [
        ("ingest, 1 connection", "InfluxDB", "ingest ≥ 1.0× InfluxDB (1 connection)", 1.0),
        ("ingest, 1 connection", "VictoriaMetrics", "moonshot: ingest ≥ 1.0× VictoriaMetrics", 1.0),
        ("on-disk size after flush", "VictoriaMetrics", "on-disk size ≤ VictoriaMetrics", 1.0),
    ]
    answers: dict[str, dict[str, Answer]] = {}
    for system in db_systems():
        if not opts.wants(system.name):
            continue
        try:
            answers[system.name] = run_db_system(system, batches, window, opts, rec)
        except Exception as exc:  # one system failing must not stop the others
            rec.fail(system.name, exc)
    differences = compare_answers({name: a for name, a in answers.items() if a})
    rec.failures += differences
    if len([a for a in answers.values() if a]) > 1 and not differences:
        rec.notes.append(
            "The answers agree: for each query the sum of usage_user over the whole answer is the same on every "
            "system (to a relative 1e-6), as is count(*)."
        )
    for query in QUERY_NAMES:
        rec.targets.append((f"query: {query}", FASTEST, f"query {query}: no slower than the faster peer", 1.0))
    return rec.result()


def run_db_system(
    system: DbSystem, batches: list[bytes], window: TsbsWindow, opts: Options, rec: Recorder
) -> dict[str, Answer]:
    """Ingest runs (fresh server each), on-disk size and queries of one system; returns its query answers."""
    print(f"db: {system.name}", flush=True)
    sizes: list[float] = []
    answers: dict[str, Answer] = {}
    for connections in opts.connections if system.full else opts.connections[:1]:
        values, rss, client, server_cpu = [], [], [], []
        for run in range(opts.runs):
            server = system.start(opts.work_dir)
            try:
                server.start()
                rec.versions.setdefault(system.name, server.version())
                usage = Usage(server)
                errors = post_batches(server.write_url(), system.headers(server), batches, connections)
                wall, client_pct, server_pct = usage.finish()
                if errors:
                    raise RuntimeError(f"ingest with {connections} connections failed: {errors[0]}")
                check_stored(system, server, window)
                values.append(window.lines / wall)
                client.append(client_pct)
                server_cpu.append(server_pct)
                if connections == opts.connections[0] and system.full:
                    server.flush()
                    sizes.append(server.data_size_bytes() / 2**20)
                    if run == 0:
                        answers = run_queries(system, server, window, opts, rec)
                rss.append(server.peak_rss_mb)
            finally:
                server.cleanup()
        label = f"ingest, {connections} connection{'s' if connections > 1 else ''}"
        rec.add(Measurement(label, system.name, "lines/s", "higher", values, rss, client, server_cpu))
    if sizes:
        rec.add(Measurement("on-disk size after flush", system.name, "MiB", "lower", sizes))
    if opts.profile and system.name.startswith("tidepool") and system.full:
        server = system.start(opts.work_dir)
        try:
            server.start()
            with rec.profiling("ingest, 1 connection", server):
                post_batches(server.write_url(), system.headers(server), batches, 1)
            server.flush()
            for name, run_query in system.queries(server, window).items():
                run_query()
                with rec.profiling(f"query {name!r}, repeated for 2 s", server):
                    until = time.perf_counter() + 2.0
                    while time.perf_counter() < until:
                        run_query()
        finally:
            server.cleanup()
    return answers


def check_stored(system: DbSystem, server: Any, window: TsbsWindow) -> None:
    """After an ingest (untimed): the system's own count answers exactly the number of lines sent."""
    make_searchable = getattr(server, "make_searchable", None)
    if make_searchable is not None:
        make_searchable()
    stored = system.queries(server, window)[system.count_query]().total
    if stored != window.lines:
        raise RuntimeError(f"{system.name} stored {stored:,.0f} of {window.lines:,} lines")


def run_queries(system: DbSystem, server: Any, window: TsbsWindow, opts: Options, rec: Recorder) -> dict[str, Answer]:
    """Time each query warm; returns the answers, to be compared between systems."""
    answers = {}
    for name, run_query in system.queries(server, window).items():
        try:
            answer = run_query()  # warm-up, and the answer to compare
            timings = []
            usage = Usage(server)
            for _ in range(opts.query_runs):
                start = time.perf_counter()
                run_query()
                timings.append((time.perf_counter() - start) * 1000)
            _, client_pct, server_pct = usage.finish()
            answers[name] = answer
            if name == system.count_query and answer.total != window.lines:
                rec.failures.append(f"{system.name}: count(*) answered {answer.total:,.0f}, expected {window.lines:,}")
            note = f"{answer.rows:,} rows" if name != system.count_query else f"= {answer.total:,.0f}"
            rec.add(
                Measurement(
                    f"query: {name}",
                    system.name,
                    "ms",
                    "lower",
                    timings,
                    [server.peak_rss_mb],
                    [client_pct],
                    [server_pct],
                    note=note,
                )
            )
        except Exception as exc:
            rec.fail(f"{system.name} query {name!r}", exc)
    return answers


# ------------------------------------------------------------------------------------------------------ broker part


@dataclass
class BrokerSystem:
    name: str
    start: Callable[[Path | None], Any]


def broker_systems() -> list[BrokerSystem]:
    from bench.peers.kafka import ApacheKafkaPeer
    from bench.peers.tansu import Tansu
    from bench.peers.tidepool import TidepoolBroker

    return [
        BrokerSystem("tidepool broker", TidepoolBroker),
        BrokerSystem("tansu", Tansu),
        BrokerSystem("Apache Kafka", ApacheKafkaPeer),
    ]


def sensor_messages(count: int, size: int, pool: int = 1000) -> list[bytes]:
    """`pool` distinct sensor JSON messages (the tutorial's shape), padded with a `note` field to ~`size` bytes,
    repeated to `count`. Reusing a pool keeps the client's own cost out of the measurement."""
    from tidepool.pipeline.sensors import SensorFleet

    fleet = SensorFleet(50, station_tag=True, event_time=True, seed=7)
    distinct = []
    for i in range(pool):
        raw = fleet.message()[0]
        pad = size - len(raw) - len(',"note":""')
        if pad > 0:
            raw = raw[:-1] + b',"note":"' + (b"%08d" % i * (pad // 8 + 1))[:pad] + b'"}'
        distinct.append(raw)
    return [distinct[i % pool] for i in range(count)]


def create_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)], operation_timeout=30)
    futures[topic].result(timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        topics = admin.list_topics(topic, timeout=5).topics
        if topic in topics and topics[topic].error is None and topics[topic].partitions:
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} not ready")


def produce_confluent(bootstrap: str, topic: str, messages: list[bytes]) -> None:
    from confluent_kafka import KafkaError, Producer

    failed: list[KafkaError] = []
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 5,
            "queue.buffering.max.messages": 500_000,
            "delivery.report.only.error": True,  # the callback below runs for failures only: no per-message cost
            "on_delivery": lambda err, _msg: failed.append(err) if err else None,
            "log_level": 0,
        }
    )
    for value in messages:
        while True:
            try:
                producer.produce(topic, value)
                break
            except BufferError:
                producer.poll(0.005)
    remaining = producer.flush(300)
    if remaining:
        raise RuntimeError(f"{remaining} messages still undelivered after 300 s")
    if failed:
        raise RuntimeError(f"{len(failed)} messages failed, first: {failed[0]}")


def consume_confluent(bootstrap: str, topic: str, count: int) -> float:
    """Consume `count` messages from offset 0; returns the seconds from the first message to the last.

    The clock starts at the first message because librdkafka 2.x spends a fixed ~0.5 s between assign() and the
    first fetch on every broker alike (kcat, on librdkafka 2.0, does not); counting it would measure the client.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        received = 0
        first_at = 0.0
        deadline = time.monotonic() + 300
        while received < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"consumed {received} of {count} in 300 s")
            # consume() waits for all num_messages or the timeout: never ask for more than are left
            wanted = 1 if received == 0 else min(10_000, count - received)
            for message in consumer.consume(num_messages=wanted, timeout=1.0):
                if message.error():
                    raise RuntimeError(f"consume error: {message.error()}")
                received += 1
                if received == 1:
                    first_at = time.perf_counter()
        return time.perf_counter() - first_at
    finally:
        consumer.close()


def client_versions() -> dict[str, str]:
    import confluent_kafka

    versions = {"confluent-kafka": f"{confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})"}
    try:
        banner = subprocess.run([kcat_binary(), "-V"], capture_output=True, text=True, timeout=10).stdout
        match = re.search(r"Version (\S+).*librdkafka (\S+)", banner)
        versions["kcat"] = f"{match.group(1)} (librdkafka {match.group(2)})" if match else "unknown"
    except PeerUnavailable:
        versions["kcat"] = "not installed"
    return versions


def kcat_binary() -> str:
    binary = shutil.which("kcat") or shutil.which("kafkacat")
    if binary is None:
        raise PeerUnavailable("kcat not found (sudo bench/peers/install.sh)")
    return binary


def first_error(stderr: bytes) -> str:
    """The first line of a tool's stderr that says what went wrong (librdkafka's `%3|…|FAIL|…` lines included)."""
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    line = next((line for line in lines if "ERROR" in line or "FAIL" in line), lines[-1] if lines else "")
    return re.sub(r"^%\d\|[\d.]+\|\w+\|[^|]*\|\s*(\[thrd:[^\]]*\]:\s*)?", "", line)[:300]


def produce_kcat(bootstrap: str, topic: str, message_file: Path) -> None:
    done = subprocess.run(
        [kcat_binary(), "-P", "-b", bootstrap, "-t", topic, "-p", "0", "-X", "acks=all", "-l", str(message_file)],
        capture_output=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kcat -P exited {done.returncode}: {first_error(done.stderr)}")


def consume_kcat(bootstrap: str, topic: str, count: int) -> None:
    """kcat prints only each offset (`-f '%o\\n'`), so the check that all `count` arrived costs the client little."""
    argv = [kcat_binary(), "-C", "-b", bootstrap, "-t", topic, "-p", "0", "-o", "beginning", "-c", str(count), "-e"]
    done = subprocess.run([*argv, "-q", "-f", "%o\\n"], capture_output=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"kcat -C exited {done.returncode}: {first_error(done.stderr)}")
    offsets = done.stdout.split()
    if len(offsets) != count or int(offsets[-1]) != count - 1:
        raise RuntimeError(f"kcat consumed {len(offsets)} messages, expected {count}")


def broker_step(
    client: str, direction: str, bootstrap: str, topic: str, messages: list[bytes], message_file: Path
) -> float | None:
    """One timed step: `client` ("confluent-kafka" or "kcat") produces all `messages` or consumes them back.

    Returns messages/s when the step times itself (confluent-kafka consume), else None (the caller's wall clock).
    """
    if client == "confluent-kafka":
        if direction == "produce":
            produce_confluent(bootstrap, topic, messages)
            return None
        return (len(messages) - 1) / consume_confluent(bootstrap, topic, len(messages))
    if direction == "produce":
        produce_kcat(bootstrap, topic, message_file)
    else:
        consume_kcat(bootstrap, topic, len(messages))
    return None


@contextmanager
def started(system_name: str, factory: Callable[[Path | None], Any], opts: Options, rec: Recorder) -> Iterator[Any]:
    server = factory(opts.work_dir)
    try:
        server.start()
        rec.versions.setdefault(system_name, server.version())
        yield server
    finally:
        server.cleanup()


def part_broker(opts: Options) -> PartResult:
    rec = Recorder("broker", "Broker: produce and consume", opts)
    workloads = [
        ("~100 B", max(1000, round(SMALL_MESSAGES_FULL * opts.scale)), 100),
        ("1 KB", max(1000, round(LARGE_MESSAGES_FULL * opts.scale)), 1024),
    ]
    rec.notes += [
        "Messages: sensor JSON in the tutorial's shape (station_id, pressure, temperature, visibility, time), the "
        "1 KB kind padded with a `note` field; "
        + ", ".join(f"{n:,} × {label}" for label, n, _ in workloads)
        + "; one partition, a fresh topic per run, acks=all, no compression, librdkafka defaults otherwise "
        "(linger.ms 5).",
        "Produce is timed from the first send to the last acknowledgement (confluent-kafka `flush()`, or kcat "
        "`-P -l FILE` exiting); consume with kcat (`-C -o beginning -c N -e`) from process start to exit, with "
        "confluent-kafka from the first message to the last (librdkafka 2.16 waits a fixed ~0.5 s before its "
        "first fetch on every broker alike). "
        "Every consume checks that all messages came back (offsets 0 … N−1), which also checks the produce before it.",
        "tansu runs with its memory storage engine (the only one in that build): it never touches the disk. "
        "tidepool broker and Apache Kafka write a durable log (tidepool: fsync every 1 s by default; Kafka: page "
        "cache, no fsync by default). Apache Kafka: JVM with G1, 1 GiB heap, full JIT.",
        "The client CPU column shows how much of a core the client (Python + librdkafka, or kcat) burned; near "
        "100 % means the number is client-bound on these 2 cores.",
    ]
    for label, count, _size in workloads:
        for client in ("confluent-kafka", "kcat"):
            for direction in ("produce", "consume"):
                workload = f"{direction} {count:,} × {label}, {client}"
                for peer in ("tansu", "Apache Kafka"):
                    target = 1.0 if peer == "tansu" else 0.5
                    rec.targets.append((workload, peer, f"{workload}: ≥ {target}× {peer}", target))
    rec.versions.update(client_versions())
    for system in broker_systems():
        if not opts.wants(system.name):
            continue
        try:
            with started(system.name, system.start, opts, rec) as server:
                run_broker_workloads(system.name, server, workloads, opts, rec)
        except Exception as exc:
            rec.fail(system.name, exc)
    return rec.result()


def run_broker_workloads(
    name: str, server: Any, workloads: list[tuple[str, int, int]], opts: Options, rec: Recorder
) -> None:
    print(f"broker: {name}", flush=True)
    for label, count, size in workloads:
        messages = sensor_messages(count, size)
        mean_size = sum(len(m) for m in messages[:1000]) / min(1000, len(messages))
        message_file = Path(server.work_dir) / f"messages-{size}.txt"
        message_file.write_bytes(b"\n".join(messages) + b"\n")
        for client in ("confluent-kafka", "kcat"):
            results: dict[str, tuple[list[float], list[float], list[float], list[float]]] = {
                "produce": ([], [], [], []),
                "consume": ([], [], [], []),
            }
            try:
                for _ in range(opts.runs):
                    topic = f"bench-{size}-{uuid.uuid4().hex[:8]}"
                    create_topic(server.bootstrap, topic)
                    for direction in ("produce", "consume"):
                        usage = Usage(server)
                        rate = broker_step(client, direction, server.bootstrap, topic, messages, message_file)
                        wall, client_pct, server_pct = usage.finish()
                        values, rss, cpu_client, cpu_server = results[direction]
                        values.append(rate if rate is not None else count / wall)
                        rss.append(server.peak_rss_mb)
                        cpu_client.append(client_pct)
                        cpu_server.append(server_pct)
            except Exception as exc:
                rec.fail(f"{name} {label} {client}", exc)
                continue
            for direction, (values, rss, cpu_client, cpu_server) in results.items():
                mb_s = statistics.median(values) * mean_size / 1e6
                rec.add(
                    Measurement(
                        f"{direction} {count:,} × {label}, {client}",
                        name,
                        "msg/s",
                        "higher",
                        values,
                        rss,
                        cpu_client,
                        cpu_server,
                        note=f"{mb_s:.1f} MB/s",
                    )
                )
        if opts.profile and name.startswith("tidepool"):
            topic = f"bench-profile-{uuid.uuid4().hex[:8]}"
            create_topic(server.bootstrap, topic)
            for direction in ("produce", "consume"):
                with rec.profiling(f"{direction} {count:,} × {label}, confluent-kafka", server):
                    broker_step("confluent-kafka", direction, server.bootstrap, topic, messages, message_file)


# ------------------------------------------------------------------------------------------------------ groups part


def join_time_ms(bootstrap: str, topic: str) -> float:
    """Milliseconds from subscribe() to the first partition assignment of a new single-member group."""
    from confluent_kafka import Consumer

    assigned = threading.Event()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-join-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    try:
        start = time.perf_counter()
        consumer.subscribe([topic], on_assign=lambda _c, _p: assigned.set())
        deadline = start + 60
        while not assigned.is_set():
            if time.perf_counter() > deadline:
                raise RuntimeError("no assignment within 60 s")
            consumer.poll(0.01)
        return (time.perf_counter() - start) * 1000
    finally:
        consumer.close()


def part_groups(opts: Options) -> PartResult:
    rec = Recorder("groups", "Consumer group join time", opts)
    joins = max(opts.runs, 3)
    rec.notes += [
        f"{joins} joins per broker, each a new group with one confluent-kafka consumer on a 1-partition topic: "
        "time from `subscribe()` to the assignment callback (FindCoordinator, JoinGroup, SyncGroup). Apache Kafka "
        "runs with group.initial.rebalance.delay.ms=0 (its default of 3 s would dominate).",
        "tansu answers the first JoinGroup with MEMBER_ID_REQUIRED at once, then holds the second one about 23 s "
        "before answering (seen with librdkafka's cgrp debug log); its command line has no setting for that wait.",
    ]
    rec.targets.append(("join a new group (1 member)", "", "group join < 1 s", 1000.0))
    for system in broker_systems():
        if not opts.wants(system.name):
            continue
        try:
            with started(system.name, system.start, opts, rec) as server:
                topic = f"bench-join-{uuid.uuid4().hex[:8]}"
                create_topic(server.bootstrap, topic)
                usage = Usage(server)
                times = [join_time_ms(server.bootstrap, topic) for _ in range(joins)]
                _, client_pct, server_pct = usage.finish()
                rec.add(
                    Measurement(
                        "join a new group (1 member)",
                        system.name,
                        "ms",
                        "lower",
                        times,
                        [server.peak_rss_mb],
                        [client_pct],
                        [server_pct],
                    )
                )
        except Exception as exc:
            rec.fail(system.name, exc)
    return rec.result()


# ---------------------------------------------------------------------------------------------------- pipeline part

PIPELINE_MESSAGES_FULL = 1_000_000
FRESHNESS_RATES = (1_000, 10_000)
# Every count(*) costs the db real work (tidepool db deduplicates its whole memtable per query), so polling is kept
# sparse: at most every 0.5 s while a throughput run is far from done, every 0.1 s for freshness.
THROUGHPUT_POLL_S = 0.5
FRESHNESS_POLL_S = 0.1
TABLE = "kafka_consumer"


class Measured(Protocol):
    @property
    def cpu_seconds(self) -> float: ...

    @property
    def peak_rss_mb(self) -> float: ...


class ProcessGroup:
    """Several servers measured as one: CPU seconds and peak RSS summed over them."""

    def __init__(self, *servers: Measured) -> None:
        self.servers = servers

    @property
    def cpu_seconds(self) -> float:
        return sum(s.cpu_seconds for s in self.servers)

    @property
    def peak_rss_mb(self) -> float:
        return sum(s.peak_rss_mb for s in self.servers)


def visible_rows(db: Any) -> int:
    """Rows in the agent's table now; 0 while the table does not exist yet."""
    try:
        rows = json.loads(db.query(f"SELECT count(*) AS n FROM {TABLE}"))
    except RuntimeError:
        return 0
    return int(rows[0]["n"]) if rows else 0


def wait_for_rows(db: Any, expected: int, timeout: float) -> float:
    """Poll until `expected` rows are visible; returns the time.perf_counter() when they were.

    Polls sparsely while far from done (every count(*) costs the db work) and closely near the end: the next poll
    comes after half the time the remaining rows should take at the rate seen so far, between 20 ms and 0.5 s.
    """
    deadline = time.monotonic() + timeout
    first = last = (time.perf_counter(), visible_rows(db))
    while time.monotonic() < deadline:
        now, count = time.perf_counter(), visible_rows(db)
        if count >= expected:
            return now
        rate = (count - first[1]) / (now - first[0]) if now > first[0] and count > first[1] else 0.0
        last = (now, count)
        wait = (expected - last[1]) / rate / 2 if rate > 0 else THROUGHPUT_POLL_S
        time.sleep(min(THROUGHPUT_POLL_S, max(0.02, wait)))
    raise RuntimeError(f"only {visible_rows(db):,} of {expected:,} rows visible after {timeout:.0f} s")


def freshness_ms(send_ns: list[int], samples: list[tuple[int, int]], baseline: int) -> list[float]:
    """Per message, ms from its send to the first count(*) sample that includes it.

    Messages go through one partition in order, so message i is visible once the row count exceeds baseline + i.
    `samples` are (completion time ns, count) in time order; a sample's completion time makes the figure an upper
    bound, off by at most one poll (the query time plus the poll pause).
    """
    import bisect

    counts = [c for _, c in samples]
    out = []
    for i, sent in enumerate(send_ns):
        k = bisect.bisect_right(counts, baseline + i)
        if k == len(samples):
            raise ValueError(f"message {i} never became visible")
        out.append((samples[k][0] - sent) / 1e6)
    return out


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * q // 100)))
    return ordered[int(rank) - 1]


def pipeline_producer(bootstrap: str) -> Any:
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 0})


def produce_all(producer: Any, topic: str, messages: list[bytes]) -> None:
    for value in messages:
        while True:
            try:
                producer.produce(topic, value)
                break
            except BufferError:
                producer.poll(0.005)
    if producer.flush(120):
        raise RuntimeError("producer could not deliver everything in 120 s")


def paced_run(producer: Any, topic: str, db: Any, rate: int, duration: float) -> tuple[list[float], float]:
    """Send sensor readings at `rate`/s for `duration` s while polling count(*).

    Returns each message's freshness (ms) and the send rate actually achieved (msg/s)."""
    from tidepool.pipeline.sensors import SensorFleet

    fleet = SensorFleet(50, station_tag=True, event_time=True)
    baseline = visible_rows(db)
    samples: list[tuple[int, int]] = []
    sending = threading.Event()
    sending.set()

    def poll() -> None:
        while sending.is_set():
            count = visible_rows(db)
            samples.append((time.time_ns(), count))
            time.sleep(FRESHNESS_POLL_S)

    poller = threading.Thread(target=poll)
    poller.start()
    send_ns: list[int] = []
    try:
        start = time.perf_counter()
        total = int(rate * duration)
        while len(send_ns) < total:
            due = min(total, int(rate * (time.perf_counter() - start)) + 1)
            while len(send_ns) < due:
                producer.produce(topic, fleet.message()[0])
                send_ns.append(time.time_ns())
            producer.poll(0)
            time.sleep(0.001)
        achieved = total / (time.perf_counter() - start)
        producer.flush(60)
        deadline = time.monotonic() + 60
        while (not samples or samples[-1][1] < baseline + total) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sending.clear()
        poller.join()
    return freshness_ms(send_ns, samples, baseline), achieved


@dataclass
class PipelineSetup:
    name: str
    broker_name: str
    broker: Callable[[Path | None], Any]


def pipeline_setups() -> list[PipelineSetup]:
    from bench.peers.kafka import ApacheKafkaPeer
    from bench.peers.tidepool import TidepoolBroker

    return [
        PipelineSetup("tidepool broker + agent + db", "tidepool broker", TidepoolBroker),
        PipelineSetup("tidepool agent + db on Apache Kafka", "Apache Kafka", ApacheKafkaPeer),
    ]


def part_pipeline(opts: Options) -> PartResult:
    rec = Recorder("pipeline", "Pipeline: topic → agent → queryable rows", opts)
    count = max(10_000, round(PIPELINE_MESSAGES_FULL * opts.scale))
    duration = 5.0 if opts.scale <= 0.2 else 15.0
    rec.notes += [
        f"Throughput: the agent and db idle and ready, {count:,} sensor readings from the simulator's generator "
        "(`tidepool.pipeline.sensors`: tutorial JSON + station_id and time, ~107 B) are produced as fast as "
        "confluent-kafka can; timed from the first send until "
        "`SELECT count(*)` over HTTP sees them all. The agent runs the Telegraf config `tidepool up` writes "
        "(flush_interval 100 ms, batches of 5,000, 20,000 undelivered messages in flight); one partition.",
        f"Freshness: readings sent at a fixed rate for {duration:.0f} s while another thread polls "
        "`SELECT count(*)`; a message is fresh at the completion time of the first poll whose count "
        "includes it (one partition, in order), with 100 ms between polls, so the figures are upper bounds by "
        "one poll (100 ms plus the query time). The throughput run polls sparsely while far from done and every "
        "20 ms near the end. Polling is not free: each `count(*)` makes tidepool db deduplicate its whole "
        "memtable, which a profile showed to be most of the db's busy time when polled every 0.1 s during a "
        "throughput run.",
        "CPU and RSS columns are the three servers together (broker + agent + db); the note gives the agent's "
        "own CPU per message.",
    ]
    throughput = f"sustained, {count:,} messages"
    rec.targets += [
        (throughput, "", "pipeline ≥ 50,000 msg/s sustained", 50_000.0),
        (f"freshness p99 at {FRESHNESS_RATES[-1]:,} msg/s", "", "p99 freshness < 1 s at 10 k msg/s", 1000.0),
    ]
    from bench.peers.tidepool import TidepoolAgent, TidepoolDb

    for setup in pipeline_setups():
        if not opts.wants(setup.name):
            continue
        print(f"pipeline: {setup.name}", flush=True)
        try:
            with (
                started(setup.broker_name, setup.broker, opts, rec) as broker,
                started("tidepool db", TidepoolDb, opts, rec) as db,
            ):
                topic = "oceanic"
                create_topic(broker.bootstrap, topic)
                agent = TidepoolAgent(opts.work_dir, broker.bootstrap, db.url, topic)
                try:
                    agent.start()
                    run_pipeline(setup.name, broker, db, agent, count, duration, opts, rec)
                finally:
                    agent.cleanup()
        except Exception as exc:
            rec.fail(setup.name, exc)
    return rec.result()


def run_pipeline(
    name: str, broker: Any, db: Any, agent: Any, count: int, duration: float, opts: Options, rec: Recorder
) -> None:
    from tidepool.pipeline.sensors import SensorFleet

    servers = ProcessGroup(broker, db, agent)
    producer = pipeline_producer(broker.bootstrap)
    rates, rss, client, server_cpu, agent_us = [], [], [], [], []
    for _ in range(opts.runs):
        fleet = SensorFleet(50, station_tag=True, event_time=True)
        messages = [fleet.message()[0] for _ in range(count)]
        baseline = visible_rows(db)
        usage = Usage(servers)
        agent_cpu0 = agent.cpu_seconds
        start = time.perf_counter()
        produce_all(producer, "oceanic", messages)
        done = wait_for_rows(db, baseline + count, timeout=600)
        _, client_pct, server_pct = usage.finish()
        rates.append(count / (done - start))
        rss.append(servers.peak_rss_mb)
        client.append(client_pct)
        server_cpu.append(server_pct)
        agent_us.append((agent.cpu_seconds - agent_cpu0) / count * 1e6)
    if opts.profile and name.startswith("tidepool"):
        fleet = SensorFleet(50, station_tag=True, event_time=True)
        messages = [fleet.message()[0] for _ in range(count)]
        baseline = visible_rows(db)
        traced = [s for s in (broker, db, agent) if s.name.startswith("tidepool")]
        with rec.profiling(f"{name}, {count:,} messages", *traced):
            produce_all(producer, "oceanic", messages)
            wait_for_rows(db, baseline + count, timeout=600)
    note = f"agent CPU {statistics.median(agent_us):.0f} µs/msg"
    rec.add(
        Measurement(f"sustained, {count:,} messages", name, "msg/s", "higher", rates, rss, client, server_cpu, note)
    )
    for rate in FRESHNESS_RATES:
        p50s, p99s, rss, client, server_cpu, achieved = [], [], [], [], [], []
        for _ in range(opts.runs):
            usage = Usage(servers)
            fresh, sent_rate = paced_run(producer, "oceanic", db, rate, duration)
            achieved.append(sent_rate)
            _, client_pct, server_pct = usage.finish()
            p50s.append(percentile(fresh, 50))
            p99s.append(percentile(fresh, 99))
            rss.append(servers.peak_rss_mb)
            client.append(client_pct)
            server_cpu.append(server_pct)
        for label, values in (("p50", p50s), ("p99", p99s)):
            rec.add(
                Measurement(
                    f"freshness {label} at {rate:,} msg/s",
                    name,
                    "ms",
                    "lower",
                    values,
                    rss,
                    client,
                    server_cpu,
                    note=f"sent at {min(achieved):,.0f} msg/s or more",
                )
            )


PARTS: dict[str, Callable[[Options], PartResult]] = {
    "db": part_db,
    "broker": part_broker,
    "groups": part_groups,
    "pipeline": part_pipeline,
}
