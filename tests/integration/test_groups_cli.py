"""`tidepool groups` against a real tidepool broker: list, describe with lag, reset-offsets, delete."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tidepool.broker.process import BrokerProcess

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    with BrokerProcess(tmp_path / "broker", free_port(), "--partitions", "2") as running:
        yield running


def groups_cli(broker: BrokerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "tidepool", "groups", *args, "--bootstrap-server", broker.bootstrap]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def rows(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines() if line.strip()]


def consume_and_commit(bootstrap: str, group: str, per_partition: dict[int, int]) -> object:
    """Subscribe, commit `per_partition[p]` messages of each partition, and return the consumer still open."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": "cli-test",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(["levels"])
    seen = 0
    deadline = time.monotonic() + 20
    while seen < 10 and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is None or message.error():
            continue
        seen += 1
        if message.offset() < per_partition[message.partition()]:
            consumer.commit(message=message, asynchronous=False)
    assert seen == 10
    return consumer


def test_groups_cli_lists_describes_resets_and_deletes(broker: BrokerProcess) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        producer.produce("levels", str(i).encode(), partition=i % 2)
    assert producer.flush(10) == 0
    consumer = consume_and_commit(broker.bootstrap, "tide-gauges", {0: 5, 1: 2})
    try:
        listed = groups_cli(broker, "list")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split() == ["tide-gauges"]

        described = groups_cli(broker, "describe", "--group", "tide-gauges")
        assert described.returncode == 0, described.stderr
        table = rows(described.stdout)
        header = "GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID"
        assert table[0] == header.split()
        assert [(r[2], r[3], r[4], r[5], r[-1]) for r in table[1:]] == [
            ("0", "5", "5", "0", "cli-test"),
            ("1", "2", "5", "3", "cli-test"),
        ]
        assert {r[-2] for r in table[1:]} == {"/127.0.0.1"}  # the member's client address, as Kafka shows it

        refused = groups_cli(broker, "reset-offsets", "--group", "tide-gauges", "--topic", "levels", "--to-earliest")
        assert refused.returncode == 1
        assert "can only be reset if the group 'tide-gauges' is inactive" in refused.stderr
    finally:
        consumer.close()  # type: ignore[attr-defined]

    dry = groups_cli(broker, "reset-offsets", "--group", "tide-gauges", "--topic", "levels:1", "--to-offset", "1")
    assert dry.returncode == 0, dry.stderr
    assert "--execute option is missing" in dry.stdout
    assert rows(dry.stdout)[-1] == ["tide-gauges", "levels", "1", "1"]
    unchanged = rows(groups_cli(broker, "describe", "--group", "tide-gauges").stdout)
    assert [r[3] for r in unchanged if r[0] == "tide-gauges"] == ["5", "2"]

    done = groups_cli(
        broker, "reset-offsets", "--group", "tide-gauges", "--topic", "levels", "--to-latest", "--execute"
    )
    assert done.returncode == 0, done.stderr
    after = groups_cli(broker, "describe", "--group", "tide-gauges")
    assert "has no active members" in after.stdout
    assert [(r[3], r[5], r[6]) for r in rows(after.stdout) if r[0] == "tide-gauges"] == [("5", "0", "-")] * 2

    deleted = groups_cli(broker, "delete", "--group", "tide-gauges")
    assert deleted.returncode == 0, deleted.stderr
    assert groups_cli(broker, "list").stdout.split() == []
