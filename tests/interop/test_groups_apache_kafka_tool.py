"""Apache Kafka 4.x's own kafka-consumer-groups (ConsumerGroupCommand from the Maven jars) against tidepool."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.interop.apache_kafka import CONSUMER_GROUPS, ApacheKafka, apache_kafka, kafka_jars, run_tool  # noqa: F401
from tidepool.broker.process import BrokerProcess

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    kafka_jars()  # skips early when Java or the jars are unavailable
    with BrokerProcess(tmp_path / "broker", free_port(), "--partitions", "2") as running:
        yield running


def kafka_consumer_groups(broker: BrokerProcess, *args: str) -> list[list[str]]:
    done = run_tool(CONSUMER_GROUPS, ["--bootstrap-server", broker.bootstrap, *args], timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return [line.split() for line in done.stdout.splitlines() if line.strip()]


def test_kafka_consumer_groups_lists_describes_and_resets_a_tidepool_group(broker: BrokerProcess) -> None:
    from confluent_kafka import Consumer, Producer

    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        producer.produce("sensors", str(i).encode(), partition=i % 2)
    assert producer.flush(10) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "dashboards",
            "client.id": "dash-1",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(["sensors"])
    read = 0
    deadline = time.monotonic() + 20
    while read < 10 and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None and not message.error():
            read += 1
            # Partition 0 commits only 3 of its 5 messages, so it shows a lag of 2.
            if message.partition() == 1 or message.offset() < 3:
                consumer.commit(message=message, asynchronous=False)
    assert read == 10
    try:
        assert ["dashboards"] in kafka_consumer_groups(broker, "--list")

        rows = kafka_consumer_groups(broker, "--describe", "--group", "dashboards")
        assert rows[0][:6] == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"]
        lag = {int(r[2]): (int(r[3]), int(r[4]), int(r[5]), r[-1]) for r in rows[1:]}
        assert lag == {0: (3, 5, 2, "dash-1"), 1: (5, 5, 0, "dash-1")}

        state = kafka_consumer_groups(broker, "--describe", "--group", "dashboards", "--state")
        assert state[1][0] == "dashboards" and state[1][-3:] == ["range", "Stable", "1"]
    finally:
        consumer.close()

    reset = kafka_consumer_groups(
        broker, "--reset-offsets", "--group", "dashboards", "--topic", "sensors", "--to-earliest", "--execute"
    )
    assert sorted((r[2], r[3]) for r in reset[1:]) == [("0", "0"), ("1", "0")]
    rows = kafka_consumer_groups(broker, "--describe", "--group", "dashboards")
    assert sorted((r[2], r[3], r[5]) for r in rows if r[0] == "dashboards") == [("0", "0", "5"), ("1", "0", "5")]

    deleted = kafka_consumer_groups(broker, "--delete", "--group", "dashboards")
    assert any("successful" in " ".join(line) for line in deleted)
    assert ["dashboards"] not in kafka_consumer_groups(broker, "--list")


def test_tidepool_groups_cli_works_against_apache_kafka(apache_kafka: ApacheKafka) -> None:  # noqa: F811
    """The scale-out path: the same `tidepool groups` commands against a real Apache Kafka 4.x broker."""
    import subprocess
    import sys

    from confluent_kafka import Consumer, Producer

    bootstrap = apache_kafka.bootstrap
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(4):
        producer.produce("buoys", str(i).encode())
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "buoy-readers",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(["buoys"])
    read = 0
    deadline = time.monotonic() + 60
    while read < 2 and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None and not message.error():
            read += 1
            consumer.commit(message=message, asynchronous=False)
    consumer.close()
    assert read == 2

    def groups_cli(*args: str) -> list[list[str]]:
        argv = [sys.executable, "-m", "tidepool", "groups", *args, "--bootstrap-server", bootstrap]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return [line.split() for line in done.stdout.splitlines() if line.strip()]

    assert ["buoy-readers"] in groups_cli("list")
    described = [r for r in groups_cli("describe", "--group", "buoy-readers") if r[0] == "buoy-readers"]
    assert [(r[1], r[2], r[3], r[4], r[5]) for r in described] == [("buoys", "0", "2", "4", "2")]
    groups_cli("reset-offsets", "--group", "buoy-readers", "--topic", "buoys", "--to-earliest", "--execute")
    described = [r for r in groups_cli("describe", "--group", "buoy-readers") if r[0] == "buoy-readers"]
    assert [(r[3], r[5]) for r in described] == [("0", "4")]


def test_kafka_console_consumer_group_resumes_where_the_last_one_stopped(broker: BrokerProcess) -> None:
    """Apache Kafka's Java consumer (classic protocol, JoinGroup v9, OffsetCommit v9) in a tidepool group."""
    from confluent_kafka import Producer

    from tests.interop.apache_kafka import CONSOLE_CONSUMER

    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        producer.produce("tidal", f"v{i}".encode(), partition=i % 2)
    assert producer.flush(10) == 0
    seen: list[str] = []
    for _ in range(2):
        args = ["--bootstrap-server", broker.bootstrap, "--topic", "tidal", "--group", "java-readers"]
        args += ["--from-beginning", "--max-messages", "5", "--timeout-ms", "30000"]
        done = run_tool(CONSOLE_CONSUMER, args, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        seen += done.stdout.split()
    assert sorted(seen) == [f"v{i}" for i in range(10)]  # the second consumer resumed: nothing twice
