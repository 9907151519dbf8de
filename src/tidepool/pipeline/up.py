"""`tidepool up`: broker, database, agent and (optionally) the simulator, as one supervised pipeline.

Defaults are the tutorial's: topic `oceanic`, database `public`, measurement `kafka_consumer`, the broker on
127.0.0.1:9092 and the database on 127.0.0.1:8902. Any part can be left out and pointed at a real one instead
(`--no-broker --brokers host:9092`, `--no-db --db-url http://host:8902`), so the same command fronts Apache Kafka or
CnosDB. The agent runs a Telegraf config file: the one given with `--agent-config`, or one written to
`<data-dir>/agent.conf` from the tutorial's, tuned for freshness.
"""

from __future__ import annotations

import base64
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from tidepool.errors import TidepoolError
from tidepool.logs import get_logger
from tidepool.netaddr import split_host_port
from tidepool.pipeline.supervisor import Child, Supervisor

log = get_logger("up")

AGENT_GROUP = "telegraf_metrics_consumers"  # Telegraf's default consumer_group


@dataclass
class UpOptions:
    data_dir: Path = Path("tidepool-data")
    broker: bool = True
    brokers: str = "127.0.0.1:9092"
    db: bool = True
    db_url: str = "http://127.0.0.1:8902"
    agent: bool = True
    agent_config: Path | None = None
    simulate: bool = False
    sensors: int = 10
    rate: float = 100.0
    topic: str = "oceanic"
    database: str = "public"
    partitions: int = 1
    log_level: str = "info"
    status: bool = True
    run_for: float | None = None  # stop by itself after this many seconds (tests, demos)


def agent_config_text(options: UpOptions) -> str:
    """The tutorial's Telegraf config, plus what makes replays idempotent and rows fresh.

    `station_id` becomes a tag and `time` the row's timestamp, so a message read twice after a crash lands on the
    same (series, time) row; a 100 ms flush interval replaces Telegraf's 10 s default, and 20 000 undelivered
    messages in flight (Telegraf: 1 000) keep the consumer streaming while a batch is being written.
    """
    brokers = ", ".join(f'"{b.strip()}"' for b in options.brokers.split(",") if b.strip())
    url = f"{options.db_url.rstrip('/')}/api/v1/write?db={options.database}"
    return f"""# Written by `tidepool up`; pass --agent-config FILE to use your own Telegraf config instead.
[agent]
  flush_interval = "100ms"
  metric_batch_size = 5000
  metric_buffer_limit = 100000

[[inputs.kafka_consumer]]
  brokers = [{brokers}]
  topics = ["{options.topic}"]
  consumer_group = "{AGENT_GROUP}"
  offset = "oldest"
  max_undelivered_messages = 20000
  data_format = "json"
  tag_keys = ["station_id"]
  json_time_key = "time"
  json_time_format = "unix_ns"

[[outputs.http]]
  url = "{url}"
  timeout = "5s"
  method = "POST"
  username = "root"
  password = ""
  data_format = "influx"
  use_batch_format = true
  content_encoding = "identity"
  idle_conn_timeout = 10
"""


def _tcp_open(address: str) -> bool:
    host, port = split_host_port(address, default_host="127.0.0.1")
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(200 <= response.status < 300)
    except (OSError, urllib.error.URLError):
        return False


def sql(db_url: str, database: str, statement: str, timeout: float = 5.0) -> str:
    """Run one statement over CnosDB's HTTP API as root; returns the CSV body."""
    request = urllib.request.Request(
        f"{db_url.rstrip('/')}/api/v1/sql?db={database}",
        data=statement.encode(),
        method="POST",
        headers={"Authorization": "Basic " + base64.b64encode(b"root:").decode(), "Accept": "text/csv"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return str(response.read().decode())


def count_rows(db_url: str, database: str, table: str = "kafka_consumer") -> int | None:
    """`SELECT count(*)` of the table, or None while it does not exist yet or the database is unreachable."""
    try:
        body = sql(db_url, database, f"SELECT count(*) FROM {table}")
    except (OSError, urllib.error.URLError):
        return None
    lines = body.strip().splitlines()
    try:
        return int(lines[-1])
    except (IndexError, ValueError):
        return None


def ensure_topic(brokers: str, topic: str, partitions: int) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": brokers})
    if topic in admin.list_topics(timeout=10).topics:
        return
    futures = admin.create_topics([NewTopic(topic, partitions, 1)])
    try:
        futures[topic].result(10)
        log.info("created topic %s (%d partition%s)", topic, partitions, "" if partitions == 1 else "s")
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise TidepoolError(f"cannot create topic {topic!r} on {brokers}: {exc}") from None


class _Status:
    """What the live status line shows: produced (topic end offsets), consumed lag, rows in the database."""

    def __init__(self, options: UpOptions) -> None:
        self.options = options
        self._consumer: object | None = None
        self.last_rows: int | None = None
        self.last_at = time.monotonic()
        self.rows_rate = 0.0

    def _offsets(self) -> tuple[int, int] | None:
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        try:
            if self._consumer is None:
                self._consumer = Consumer(
                    {"bootstrap.servers": self.options.brokers, "group.id": AGENT_GROUP, "enable.auto.commit": False}
                )
            consumer = self._consumer
            assert isinstance(consumer, Consumer)
            parts = [TopicPartition(self.options.topic, p) for p in range(self.options.partitions)]
            end = sum(consumer.get_watermark_offsets(tp, timeout=1)[1] for tp in parts)
            committed = sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=1))
            return end, end - committed
        except (KafkaException, RuntimeError):
            return None

    def line(self) -> str:
        rows = count_rows(self.options.db_url, self.options.database)
        now = time.monotonic()
        if rows is not None and self.last_rows is not None and now > self.last_at:
            self.rows_rate = (rows - self.last_rows) / (now - self.last_at)
        if rows is not None:
            self.last_rows, self.last_at = rows, now
        offsets = self._offsets() if self.options.broker or self.options.brokers else None
        produced = f"{offsets[0]:,}" if offsets else "?"
        lag = f"{offsets[1]:,}" if offsets else "?"
        shown_rows = f"{rows:,}" if rows is not None else "-"
        return f"messages {produced}  agent lag {lag}  rows {shown_rows}  (+{self.rows_rate:,.0f}/s)"

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()  # type: ignore[attr-defined]


def run(options: UpOptions) -> int:
    data_dir = options.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = data_dir / "logs"
    supervisor = Supervisor(options.log_level)
    missing = [
        name
        for name, module in (
            ("broker", "tidepool.broker.cli"),
            ("db", "tidepool.db.cli"),
            ("agent", "tidepool.agent.cli"),
        )
        if not _importable(module)
    ]
    wanted = {"broker": options.broker, "db": options.db, "agent": options.agent}
    absent = [name for name in missing if wanted[name]]
    if absent:
        raise TidepoolError(
            "this installation has no "
            + ", ".join(absent)
            + " yet; leave it out with "
            + " ".join(f"--no-{name}" for name in absent)
            + " and point at a real one"
        )

    stop = {"requested": False}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    children: list[Child] = []
    if options.db:
        db_listen = options.db_url.split("://", 1)[-1].rstrip("/")
        children.append(
            Child(
                "db",
                ["db", "--data-dir", str(data_dir / "db"), "--listen", db_listen],
                logs / "db.log",
                pid_path=data_dir / "run" / "db.pid",
                healthy=lambda: _http_ok(f"{options.db_url.rstrip('/')}/api/v1/ping"),
            )
        )
    if options.broker:
        listen = options.brokers.split(",")[0].strip()
        children.append(
            Child(
                "broker",
                ["broker", "--data-dir", str(data_dir / "broker"), "--listen", listen],
                logs / "broker.log",
                pid_path=data_dir / "run" / "broker.pid",
                healthy=lambda: _tcp_open(listen),
            )
        )
    agent_config = options.agent_config
    if options.agent:
        if agent_config is None:
            agent_config = data_dir / "agent.conf"
            agent_config.write_text(agent_config_text(options))
        children.append(
            Child(
                "agent",
                ["agent", "--config", str(agent_config)],
                logs / "agent.log",
                pid_path=data_dir / "run" / "agent.pid",
            )
        )
    if options.simulate:
        children.append(
            Child(
                "simulator",
                [
                    "simulate",
                    "--bootstrap-server",
                    options.brokers,
                    "--topic",
                    options.topic,
                    "--sensors",
                    str(options.sensors),
                    "--rate",
                    str(options.rate),
                    "--station-tag",
                    "--event-time",
                    "--quiet",
                ],
                logs / "simulator.log",
                pid_path=data_dir / "run" / "simulator.pid",
            )
        )
    topic_ready = False
    try:
        for child in children:
            if stop["requested"]:
                break
            if child.name in ("agent", "simulator") and not topic_ready:
                ensure_topic(options.brokers, options.topic, options.partitions)
                topic_ready = True
            supervisor.add(child)
            supervisor.start(child)
        _print_banner(options, data_dir)
        _loop(supervisor, options, stop)
    except RuntimeError as exc:
        raise TidepoolError(str(exc)) from None
    finally:
        supervisor.stop_all()
    return 0


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _print_banner(options: UpOptions, data_dir: Path) -> None:
    lines = ["tidepool is up:"]
    lines.append(f"  broker    {options.brokers}" + ("" if options.broker else "  (external)"))
    lines.append(f"  database  {options.db_url}" + ("" if options.db else "  (external)"))
    if options.agent:
        lines.append(f"  agent     {options.topic} → {options.database}.kafka_consumer")
    if options.simulate:
        lines.append(f"  simulator {options.sensors} sensors, {options.rate:g} msg/s → {options.topic}")
    lines.append(f"  data      {data_dir}  (logs in {data_dir / 'logs'})")
    host, port = split_host_port(options.db_url.split("://", 1)[-1].rstrip("/"), default_host="127.0.0.1")
    lines.append("query it:")
    lines.append(
        f"  tidepool sql --host {host} --port {port} -d {options.database} "
        '-e "SELECT * FROM kafka_consumer ORDER BY time DESC LIMIT 5"'
    )
    lines.append(
        f"  curl -s -u root: -XPOST '{options.db_url.rstrip('/')}/api/v1/sql?db={options.database}' "
        "-d 'SELECT count(*) FROM kafka_consumer'"
    )
    lines.append("Ctrl-C stops everything (with a final flush).")
    print("\n".join(lines), flush=True)


def _loop(supervisor: Supervisor, options: UpOptions, stop: dict[str, bool]) -> None:
    status = _Status(options) if options.status else None
    tty = sys.stdout.isatty()
    started = time.monotonic()
    last_status = 0.0
    try:
        while not stop["requested"]:
            if options.run_for is not None and time.monotonic() - started >= options.run_for:
                break
            for event in supervisor.watch():
                if tty:
                    sys.stdout.write("\r\x1b[2K")
                print(event, flush=True)
            now = time.monotonic()
            if status is not None and now - last_status >= (1.0 if tty else 10.0):
                last_status = now
                line = status.line()
                if tty:
                    sys.stdout.write("\r\x1b[2K" + line)
                    sys.stdout.flush()
                else:
                    print(line, flush=True)
            time.sleep(0.2)
    finally:
        if tty:
            sys.stdout.write("\n")
        if status is not None:
            status.close()
        print("stopping: simulator, agent (final flush), broker, database", flush=True)
