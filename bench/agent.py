"""Agent throughput and freshness: tutorial-shaped JSON from a tidepool broker topic → `tidepool agent` → target.

Usage: python bench/agent.py [--messages N] [--rates 1000,10000] [--seconds S] [--target db|sink]

The target is a `tidepool db` (the default: the whole path, rows counted with SQL), or an HTTP sink process that
only counts lines (the agent's own cost).

1. Throughput: N messages are produced first, then the agent (tutorial config + [agent] tuning) drains the topic
   into the target; prints messages/s, the agent's CPU time per message and its peak RSS,
   for Telegraf's defaults and for the low-latency settings `tidepool up` uses.
2. Freshness: messages produced at a fixed rate carry their send time. With the sink, it records
   (arrival - send) per line: produce → acknowledged write. With the db, a poller runs
   `SELECT max(sent) FROM fresh_<rate>` (a table of its own) every 50 ms; (answer time - max(sent)) is produce →
   queryable for the newest visible message, an upper bound (by up to the poll period plus the query's own time,
   which is printed). Prints p50/p99 at each rate.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import print_table

SINK = r"""
import sys, time, json
from aiohttp import web
port = int(sys.argv[1])
state = {"lines": 0, "latencies": [], "first": None, "last": None}

async def write(request):
    body = await request.read()
    now = time.time_ns()
    state["first"] = state["first"] or now
    state["last"] = now
    count = body.count(b"\n")
    state["lines"] += count
    if b"sent=" in body:
        for line in body.split(b"\n"):
            at = line.find(b"sent=")
            if at >= 0:
                end = line.find(b",", at)
                end = line.find(b" ", at) if end < 0 else end
                state["latencies"].append(now - int(float(line[at + 5:end])))
    return web.Response(status=204)

async def stats(request):
    out = {k: state[k] for k in ("lines", "first", "last")}
    lat = sorted(state["latencies"])
    out["p50_ms"] = lat[len(lat) // 2] / 1e6 if lat else None
    out["p99_ms"] = lat[int(len(lat) * 0.99)] / 1e6 if lat else None
    if request.query.get("reset"):
        state.update(lines=0, latencies=[], first=None, last=None)
    return web.json_response(out)

app = web.Application(client_max_size=256 << 20)
app.router.add_post("/api/v1/write", write)
app.router.add_get("/stats", stats)
web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
"""

CONFIG = """[agent]
{agent}
[[inputs.kafka_consumer]]
  brokers = ["{broker}"]
  topics = ["{topic}"]
  data_format = "json"
  consumer_group = "{group}"
{extra}
[[outputs.http]]
  url = "http://127.0.0.1:{sink}/api/v1/write?db=public"
  timeout = "5s"
  method = "POST"
  username = "root"
  password = ""
  data_format = "influx"
  use_batch_format = true
  content_encoding = "identity"
  idle_conn_timeout = 10
"""

SETTINGS = {
    "telegraf defaults": ("", ""),
    "low latency": (
        '  flush_interval = "100ms"\n  metric_batch_size = 5000\n  metric_buffer_limit = 50000',
        "  max_undelivered_messages = 20000",
    ),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not listening")


def sink_stats(port: int, reset: bool = False) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/stats" + ("?reset=1" if reset else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def db_sql(port: int, query: str) -> list[list[str]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/sql?db=public",
        data=query.encode(),
        method="POST",
        headers={"Authorization": "Basic cm9vdDo=", "Accept": "application/csv"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return [line.split(",") for line in response.read().decode().splitlines()]


class DbTarget:
    """A `tidepool db` process: rows are counted, freshness sampled by polling max(sent)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.log = open(workdir / "db.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tidepool",
                "db",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--data-dir",
                str(workdir / "db"),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_port(self.port)
        self.base = 0
        self.table = "kafka_consumer"
        self.query_ms: list[float] = []

    def lines(self) -> int:
        try:
            return int(db_sql(self.port, f"SELECT count(*) FROM {self.table}")[1][0]) - self.base
        except Exception:  # the table does not exist yet
            return 0

    def reset(self, table: str = "kafka_consumer") -> None:
        self.table = table
        self.base = 0
        self.base = self.lines()
        self.query_ms = []

    def freshness(self, stop: threading.Event, samples: list[float]) -> None:
        """(answer time - newest visible send time) per poll: an upper bound of produce → queryable."""
        while not stop.wait(0.05):
            asked = time.time_ns()
            try:
                value = db_sql(self.port, f"SELECT max(sent) FROM {self.table}")[1][0]
            except Exception:
                continue
            answered = time.time_ns()
            self.query_ms.append((answered - asked) / 1e6)
            if value:
                samples.append(answered - float(value))

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def payload(i: int, sent: bool) -> bytes:
    doc: dict[str, float] = {
        "pressure": (i % 100) / 10,
        "temperature": (i * 7 % 1000) / 10,
        "visibility": (i * 13 % 1000) / 10,
    }
    if sent:
        doc["sent"] = time.time_ns()
    return json.dumps(doc).encode()


def produce(bootstrap: str, topic: str, count: int, rate: float = 0.0, sent: bool = False) -> float:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2, "batch.num.messages": 10000})
    started = time.monotonic()
    for i in range(count):
        while True:
            try:
                producer.produce(topic, payload(i, sent))
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
        if rate and i % 50 == 49:
            ahead = (i + 1) / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    producer.flush(60)
    return time.monotonic() - started


def create_topic(bootstrap: str, topic: str) -> None:
    """Create the topic before the agent subscribes: a subscription to a missing topic waits for a metadata
    refresh, which would count as latency of the first messages."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1)]).values():
        future.result(30)


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Agent:
    def __init__(self, workdir: Path, config: str, name: str) -> None:
        self.path = workdir / f"{name}.conf"
        self.path.write_text(config)
        self.log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tidepool", "agent", "--config", str(self.path)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rates", default="1000,10000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--target", choices=["sink", "db"], default="db")
    args = parser.parse_args()

    from tidepool.broker.process import BrokerProcess

    workdir = Path(tempfile.mkdtemp(prefix="tidepool-bench-agent-"))
    broker = BrokerProcess(workdir / "broker", free_port(), "--fsync", "never").start()
    sink_port = free_port()
    sink_script = workdir / "sink.py"
    sink_script.write_text(SINK)
    sink = subprocess.Popen([sys.executable, str(sink_script), str(sink_port)])
    wait_port(sink_port)
    db = DbTarget(workdir) if args.target == "db" else None
    target_port = db.port if db is not None else sink_port

    def delivered() -> float:
        return db.lines() if db is not None else sink_stats(sink_port)["lines"]

    def reset() -> None:
        if db is not None:
            db.reset()
        sink_stats(sink_port, reset=True)

    rows: list[list[object]] = []
    notes: list[str] = []
    try:
        produce_s = produce(broker.bootstrap, "oceanic", args.messages)
        print(f"produced {args.messages} messages in {produce_s:.1f}s", file=sys.stderr)
        for label, (agent_section, extra) in SETTINGS.items():
            reset()
            config = CONFIG.format(
                agent=agent_section,
                broker=broker.bootstrap,
                topic="oceanic",
                group=f"bench-{label.replace(' ', '-')}",
                extra=extra,
                sink=target_port,
            )
            started = time.monotonic()
            agent = Agent(workdir, config, label.replace(" ", "-"))
            deadline = started + 600
            first = None
            while (count := delivered()) < args.messages and time.monotonic() < deadline:
                if count and first is None:
                    first = (time.monotonic(), count)
                time.sleep(0.1)
            elapsed = time.monotonic() - started
            count = delivered()
            cpu = proc_cpu_seconds(agent.proc.pid)
            rss = proc_peak_rss_mb(agent.proc.pid)
            agent.stop()
            drain = time.monotonic() - first[0] if first else float("nan")
            steady = (count - first[1]) / drain if first and drain > 0 else float("nan")
            rows.append(
                [
                    f"throughput, {label}",
                    f"{count:.0f}",
                    f"{count / elapsed:,.0f}",
                    f"{steady:,.0f}",
                    f"{cpu / max(1, count) * 1e6:.1f}",
                    "-",
                    "-",
                    f"{rss:.0f}",
                ]
            )
        for rate in [float(r) for r in args.rates.split(",") if r]:
            topic = f"fresh-{int(rate)}"
            reset()
            if db is not None:
                db.reset(f"fresh_{int(rate)}")  # a table of its own, so the polling query stays small
            config = CONFIG.format(
                agent=SETTINGS["low latency"][0],
                broker=broker.bootstrap,
                topic=topic,
                group=f"bench-{topic}",
                extra=SETTINGS["low latency"][1] + f'\n  name_override = "fresh_{int(rate)}"',
                sink=target_port,
            )
            create_topic(broker.bootstrap, topic)
            agent = Agent(workdir, config, topic)
            time.sleep(3)  # joined and assigned before the clock starts
            cpu_before = proc_cpu_seconds(agent.proc.pid)
            count = int(rate * args.seconds)
            samples: list[float] = []
            stop = threading.Event()
            poller = threading.Thread(target=db.freshness, args=(stop, samples)) if db is not None else None
            if poller is not None:
                poller.start()
            produce(broker.bootstrap, topic, count, rate=rate, sent=True)
            deadline = time.monotonic() + 60
            while delivered() < count and time.monotonic() < deadline:
                time.sleep(0.5)
            stop.set()
            if poller is not None:
                poller.join()
            got = delivered()
            cpu = proc_cpu_seconds(agent.proc.pid) - cpu_before
            rss = proc_peak_rss_mb(agent.proc.pid)
            agent.stop()
            if db is not None:
                ordered = sorted(samples)
                p50 = ordered[len(ordered) // 2] / 1e6 if ordered else float("nan")
                p99 = ordered[int(len(ordered) * 0.99)] / 1e6 if ordered else float("nan")
                queries = sorted(db.query_ms)
                if queries:
                    notes.append(
                        f"freshness at {rate:,.0f} msg/s: the polling query itself took p50 "
                        f"{queries[len(queries) // 2]:.0f} ms, p99 {queries[int(len(queries) * 0.99)]:.0f} ms"
                    )
            else:
                stats = sink_stats(sink_port)
                p50, p99 = stats["p50_ms"], stats["p99_ms"]
            rows.append(
                [
                    f"freshness at {rate:,.0f} msg/s",
                    f"{got:.0f}",
                    "-",
                    "-",
                    f"{cpu / max(1, got) * 1e6:.1f}",
                    f"{p50:.0f}",
                    f"{p99:.0f}",
                    f"{rss:.0f}",
                ]
            )
    finally:
        sink.terminate()
        sink.wait(10)
        if db is not None:
            db.close()
        broker.stop()
    print_table(
        [
            "run",
            f"messages ({args.target})",
            "msg/s (agent start→last)",
            "msg/s (first→last)",
            "agent CPU µs/msg",
            "p50 ms",
            "p99 ms",
            "agent peak RSS MiB",
        ],
        rows,
    )
    for note in notes:
        print(note)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"bench process peak RSS {own:.0f} MiB; {os.cpu_count()} CPUs (shared)")


if __name__ == "__main__":
    main()
