"""`tidepool agent` as a real process between a real `tidepool broker` and an HTTP sink process on loopback.

The sink stands in for the database: it appends every accepted body to a file (fsync before answering 204), so a
SIGKILL of the sink loses only what was never acknowledged, as with the real db. Rows are compared as distinct
lines: the database merges a duplicate of the same series and time, so distinct lines are its row count.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.tutorial import TUTORIAL_TELEGRAF_CONF
from tidepool.broker.process import BrokerProcess

pytestmark = pytest.mark.timeout(180)

TUTORIAL = TUTORIAL_TELEGRAF_CONF

SINK = r"""
import os, sys
from aiohttp import web

path, port = sys.argv[1], int(sys.argv[2])

async def write(request):
    body = await request.read()
    if request.headers.get("Authorization") != "Basic cm9vdDo=":
        return web.Response(status=401)
    with open(path, "ab") as out:
        out.write(body)
        out.flush()
        os.fsync(out.fileno())
    return web.Response(status=204)

app = web.Application(client_max_size=64 << 20)
app.router.add_post("/api/v1/write", write)
web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
"""


def tutorial_config(broker: str, sink_port: int, extra_input: str = "", agent: str = "") -> str:
    """The tutorial's file with only the two addresses changed (and optional extra lines)."""
    text = TUTORIAL.replace("127.0.0.1:9092", broker).replace("127.0.0.1:8902", f"127.0.0.1:{sink_port}")
    text = text.replace('  data_format = "json"\n', '  data_format = "json"\n' + extra_input, 1)
    return (f"[agent]\n{agent}\n" if agent else "") + text


class SinkProcess:
    def __init__(self, directory: Path) -> None:
        self.script = directory / "sink.py"
        self.script.write_text(SINK)
        self.data = directory / "sink.lp"
        self.data.touch()
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SinkProcess:
        self.proc = subprocess.Popen([sys.executable, str(self.script), str(self.data), str(self.port)])
        _wait_for_port(self.port)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def lines(self) -> list[bytes]:
        return [line for line in self.data.read_bytes().splitlines() if line]


class AgentProcess:
    def __init__(self, directory: Path, config: str, name: str = "agent") -> None:
        self.config = directory / f"{name}.conf"
        self.config.write_text(config)
        self.log = directory / f"{name}.log"
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> AgentProcess:
        argv = [
            sys.executable,
            "-m",
            "tidepool",
            "agent",
            "--config",
            str(self.config),
            "--metrics-listen",
            f"127.0.0.1:{self.metrics_port}",
            *extra,
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        _wait_for_port(self.metrics_port, self.proc)
        return self

    def counters(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                values[key.split("{")[0]] = float(value)
        return values

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def produce(bootstrap: str, payloads: list[bytes], topic: str = "oceanic", rate: float = 0.0) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    started = time.monotonic()
    for index, payload in enumerate(payloads):
        producer.produce(topic, payload)
        producer.poll(0)
        if rate and index % 100 == 99:
            ahead = (index + 1) / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    assert producer.flush(30) == 0


def sensor_payloads(count: int) -> list[bytes]:
    return [
        json.dumps({"pressure": (i % 100) / 10, "temperature": (i * 7 % 1000) / 10, "visibility": i}).encode()
        for i in range(count)
    ]


def committed(bootstrap: str, group: str = "telegraf_metrics_consumers", topic: str = "oceanic") -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        return int(tp.offset)
    finally:
        consumer.close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    with BrokerProcess(tmp_path / "broker", free_port(), "--partitions", "1") as running:
        yield running


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SinkProcess]:
    process = SinkProcess(tmp_path).start()
    yield process
    process.kill()


def test_tutorial_config_unchanged_moves_n_messages_and_commits_after_final_flush(
    tmp_path: Path, broker: BrokerProcess, sink: SinkProcess
) -> None:
    n = 2500
    produce(broker.bootstrap, sensor_payloads(n))
    agent = AgentProcess(tmp_path, tutorial_config(broker.bootstrap, sink.port)).start()
    try:
        # metric_batch_size 1000 (Telegraf's default) writes full batches at once; the rest waits for
        # flush_interval (10 s) — or, as here, for SIGTERM's final flush.
        _until(lambda: len(sink.lines()) >= 2000, 60, "two full batches")
        _until(lambda: agent.counters().get("tidepool_agent_gather_messages_received") == n, 30, "all consumed")
        assert len(sink.lines()) == 2000
        assert committed(broker.bootstrap) <= 2000
        assert agent.stop() == 0
    finally:
        agent.kill()
    lines = sink.lines()
    assert len(lines) == n == len(set(lines))
    for line in lines:
        head, fields, _ts = line.split(b" ")
        assert head == b"kafka_consumer,host=" + os.uname().nodename.encode()
        assert sorted(pair.split(b"=")[0] for pair in fields.split(b",")) == [
            b"pressure",
            b"temperature",
            b"visibility",
        ]
    assert b"visibility=2499 " in b"\n".join(lines)
    assert committed(broker.bootstrap) == n


def test_bad_messages_are_logged_counted_committed_and_never_crash(
    tmp_path: Path, broker: BrokerProcess, sink: SinkProcess
) -> None:
    payloads = [
        b'{"pressure": 1, "temperature": 2, "visibility": 3}',
        b'{"pressure": 1, "temperature": ',  # truncated JSON
        b"42",  # a scalar, not an object
        b'"just text"',
        b'["not", "objects"]',
        b'{"pressure": 1, "padding": "' + b"x" * 2000 + b'"}',  # over max_message_len
        b"\xff\xfe garbage",
        b"",
        b'{"pressure": 4, "temperature": 5, "visibility": 6}',
    ]
    produce(broker.bootstrap, payloads)
    config = tutorial_config(
        broker.bootstrap, sink.port, extra_input="  max_message_len = 1000\n", agent='  flush_interval = "100ms"'
    )
    agent = AgentProcess(tmp_path, config).start()
    try:
        _until(lambda: len(sink.lines()) >= 2, 30, "the two good messages")
        _until(lambda: committed(broker.bootstrap) == len(payloads), 30, "every message committed")
        counters = agent.counters()
        assert counters["tidepool_agent_gather_messages_received"] == len(payloads)
        assert counters["tidepool_agent_gather_parse_errors"] == 6
        assert counters["tidepool_agent_gather_messages_parsed"] == 3  # the empty message parses to no metric
        assert counters["tidepool_agent_gather_metrics_gathered"] == 2
        assert counters["tidepool_agent_write_metrics_written"] == 2
        assert agent.proc is not None and agent.proc.poll() is None
        assert agent.stop() == 0
    finally:
        agent.kill()
    assert [line.split(b" ")[1] for line in sink.lines()] == [
        b"pressure=1,temperature=2,visibility=3", b"pressure=4,temperature=5,visibility=6",
    ]  # fmt: skip
    log = agent.log_text()
    assert f"message exceeds max_message_len (actual {len(payloads[5])}, max 1000)" in log
    assert "b'42'" in log and "must be an object or an array of objects" in log
    assert 'b\'{"pressure": 1, "temperature": \'' in log
    assert "Traceback" not in log


def test_sink_killed_mid_stream_and_restarted_ends_with_exactly_n(
    tmp_path: Path, broker: BrokerProcess, sink: SinkProcess
) -> None:
    n = 6000
    config = tutorial_config(broker.bootstrap, sink.port, agent='  flush_interval = "200ms"')
    agent = AgentProcess(tmp_path, config).start()
    producer = threading.Thread(target=produce, args=(broker.bootstrap, sensor_payloads(n)), kwargs={"rate": 2000})
    producer.start()
    try:
        _until(lambda: len(sink.lines()) >= 1000, 60, "the stream to reach the sink")
        sink.kill()
        time.sleep(1.5)  # writes fail meanwhile; the agent keeps its batches and retries
        before = committed(broker.bootstrap)
        sink.start()
        producer.join(60)
        _until(lambda: len(set(sink.lines())) >= n, 90, "every message in the restarted sink")
        assert before < n
        assert agent.stop() == 0
    finally:
        agent.kill()
    assert len(set(sink.lines())) == n
    assert "Error writing to outputs.http" in agent.log_text()
    assert committed(broker.bootstrap) == n


def test_agent_killed_mid_stream_and_restarted_loses_nothing(
    tmp_path: Path, broker: BrokerProcess, sink: SinkProcess
) -> None:
    n = 6000
    # Kafka's message timestamp as the metric time: a replayed message is then the same series+time.
    config = tutorial_config(
        broker.bootstrap, sink.port, extra_input='  timestamp_source = "inner"\n', agent='  flush_interval = "200ms"'
    )
    agent = AgentProcess(tmp_path, config).start()
    producer = threading.Thread(target=produce, args=(broker.bootstrap, sensor_payloads(n)), kwargs={"rate": 2000})
    producer.start()
    try:
        _until(lambda: len(sink.lines()) >= 1500, 60, "the stream to reach the sink")
        agent.kill()
        killed_at = len(sink.lines())
        time.sleep(0.5)
        restarted = AgentProcess(tmp_path, config, name="agent-restarted").start()
        producer.join(60)
        _until(lambda: len(set(sink.lines())) >= n, 90, "every message after the restart")
        assert restarted.stop() == 0
    finally:
        agent.kill()
    lines = sink.lines()
    assert killed_at < n
    assert len(set(lines)) == n  # nothing lost; any replay was an exact duplicate
    visibilities = {float(line.split(b"visibility=")[1].split(b" ")[0]) for line in lines}
    assert visibilities == {float(i) for i in range(n)}
    assert committed(broker.bootstrap) == n


@pytest.mark.parametrize("strategy", ["range", "sticky"])
def test_two_agents_share_three_partitions_and_every_message_arrives_once_per_replay(
    tmp_path: Path, broker: BrokerProcess, sink: SinkProcess, strategy: str
) -> None:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic("oceanic", 3)]).values():
        future.result(30)
    n = 3000
    extra = f'  timestamp_source = "inner"\n  balance_strategy = "{strategy}"\n'
    config = tutorial_config(broker.bootstrap, sink.port, extra_input=extra, agent='  flush_interval = "200ms"')
    first = AgentProcess(tmp_path, config, name="first").start()
    second = AgentProcess(tmp_path, config, name="second").start()
    try:
        produce(broker.bootstrap, sensor_payloads(n))
        _until(lambda: len(set(sink.lines())) >= n, 60, "every message")
        assert first.stop() == 0
        assert second.stop() == 0
    finally:
        first.kill()
        second.kill()
    lines = sink.lines()
    assert len(set(lines)) == n
    assert {float(line.split(b"visibility=")[1].split(b" ")[0]) for line in lines} == {float(i) for i in range(n)}
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "telegraf_metrics_consumers"})
    try:
        offsets = consumer.committed([TopicPartition("oceanic", p) for p in range(3)], timeout=10)
    finally:
        consumer.close()
    assert sum(tp.offset for tp in offsets) == n
    for agent in (first, second):  # both took part: each was given partitions at some point
        assert re.search(r"assigned oceanic\[\d\]", agent.log_text()), agent.log_text()


def test_full_buffer_pauses_the_input_instead_of_dropping(tmp_path: Path, broker: BrokerProcess) -> None:
    sink = SinkProcess(tmp_path)  # not started yet: every write fails
    n = 8000
    produce(broker.bootstrap, sensor_payloads(n))
    config = tutorial_config(
        broker.bootstrap,
        sink.port,
        extra_input="  max_undelivered_messages = 100000\n",
        agent='  flush_interval = "100ms"\n  metric_batch_size = 100\n  metric_buffer_limit = 500',
    )
    agent = AgentProcess(tmp_path, config).start()
    try:
        _until(lambda: agent.counters().get("tidepool_agent_write_errors", 0) >= 3, 30, "failing writes")
        time.sleep(2)
        counters = agent.counters()
        # Reading stops at the buffer limit (one poll, at most 2000 messages, may overshoot it); nothing is dropped.
        assert counters["tidepool_agent_gather_messages_received"] <= 500 + 2000
        assert counters["tidepool_agent_write_buffer_size"] == counters["tidepool_agent_gather_metrics_gathered"]
        assert counters["tidepool_agent_gather_lag"] == n - counters["tidepool_agent_gather_messages_received"]
        assert committed(broker.bootstrap) < 0
        sink.start()
        _until(lambda: len(sink.lines()) >= n, 60, "every message once the sink is up")
        _until(lambda: committed(broker.bootstrap) == n, 30, "every offset committed")
        assert agent.stop() == 0
    finally:
        agent.kill()
        sink.kill()
    assert len(set(sink.lines())) == n


def test_broker_killed_and_restarted_the_agent_reconnects_and_delivers_everything(
    tmp_path: Path, broker: BrokerProcess, sink: SinkProcess
) -> None:
    half = 1000
    config = tutorial_config(broker.bootstrap, sink.port, agent='  flush_interval = "200ms"')
    produce(broker.bootstrap, sensor_payloads(half))
    agent = AgentProcess(tmp_path, config).start()
    try:
        _until(lambda: len(sink.lines()) >= half, 60, "the first half")
        _until(lambda: committed(broker.bootstrap) == half, 30, "the first half committed")
        broker.kill()
        time.sleep(2)
        broker.start()
        produce(broker.bootstrap, sensor_payloads(2 * half)[half:])
        _until(lambda: len(set(sink.lines())) >= 2 * half, 90, "the second half after the broker restart")
        _until(lambda: committed(broker.bootstrap) == 2 * half, 30, "everything committed")
        assert agent.stop() == 0
    finally:
        agent.kill()
    assert len(set(sink.lines())) == 2 * half


def test_topic_tag_headers_as_tags_header_as_name_and_kafka_timestamps(
    tmp_path: Path, broker: BrokerProcess, sink: SinkProcess
) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(
        "oceanic", b'{"pressure": 1}', headers=[("station", b"s7"), ("kind", b"buoy")], timestamp=1_700_000_000_123
    )
    producer.produce("oceanic", b'{"pressure": 2}', headers=[("station", b"s8")], timestamp=1_700_000_000_456)
    assert producer.flush(30) == 0
    extra = (
        '  topic_tag = "topic"\n  msg_headers_as_tags = ["station", "absent"]\n'
        '  msg_header_as_metric_name = "kind"\n  timestamp_source = "inner"\n'
    )
    config = tutorial_config(broker.bootstrap, sink.port, extra_input=extra, agent='  flush_interval = "100ms"')
    agent = AgentProcess(tmp_path, config).start()
    try:
        _until(lambda: len(sink.lines()) >= 2, 30, "both messages")
        assert agent.stop() == 0
    finally:
        agent.kill()
    host = os.uname().nodename
    assert sink.lines() == [
        f"buoy,host={host},station=s7,topic=oceanic pressure=1 1700000000123000000".encode(),
        f"kafka_consumer,host={host},station=s8,topic=oceanic pressure=2 1700000000456000000".encode(),
    ]
