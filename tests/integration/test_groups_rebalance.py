"""Two confluent-kafka consumers share a 4-partition topic through a real broker; one is SIGKILLed.

The consumers run as separate processes (so one can be killed without a LeaveGroup) and report on stdout, as
JSON lines, each assignment and each message after its offset was committed synchronously.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tidepool.broker.process import BrokerProcess

pytestmark = pytest.mark.timeout(120)

WORKER = r"""
import json, sys
from confluent_kafka import Consumer

def say(**event):
    print(json.dumps(event), flush=True)

def on_assign(consumer, partitions):
    say(assigned=sorted(p.partition for p in partitions))

def on_revoke(consumer, partitions):
    say(revoked=sorted(p.partition for p in partitions))

consumer = Consumer({
    "bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "auto.offset.reset": "earliest",
    "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 300,
    "reconnect.backoff.max.ms": 500,
    "partition.assignment.strategy": "range",
    **({"group.instance.id": sys.argv[4]} if len(sys.argv) > 4 else {}),
})
consumer.subscribe([sys.argv[3]], on_assign=on_assign, on_revoke=on_revoke)
while True:
    message = consumer.poll(0.2)
    if message is None or message.error():
        continue
    consumer.commit(message=message, asynchronous=False)
    say(partition=message.partition(), offset=message.offset(), value=message.value().decode())
"""


class Worker:
    """One consumer process; `events` receives its JSON lines."""

    def __init__(self, bootstrap: str, group: str, topic: str, instance_id: str | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, bootstrap, group, topic, *([instance_id] if instance_id else [])],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.assignment: list[int] = []
        self.assignments: list[list[int]] = []
        self.values: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def drain(self) -> None:
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            if "assigned" in event:
                self.assignment = event["assigned"]
                self.assignments.append(event["assigned"])
            elif "revoked" in event:
                self.assignment = []
            else:
                self.values.append(event["value"])


def wait_until(condition: Any, workers: list[Worker], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            worker.drain()
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}: {[(w.assignment, len(w.values)) for w in workers]}")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    with BrokerProcess(tmp_path / "broker", free_port()) as running:
        yield running


def produce(bootstrap: str, topic: str, values: list[str]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    for i, value in enumerate(values):
        producer.produce(topic, value.encode(), partition=i % 4)
    assert producer.flush(10) == 0


def test_two_consumers_split_partitions_and_survivor_takes_all_after_sigkill(broker: BrokerProcess) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic("readings", 4, 1)]).values():
        future.result(10)
    first = [f"first-{i}" for i in range(40)]
    produce(broker.bootstrap, "readings", first)

    a = Worker(broker.bootstrap, "split", "readings")
    b = Worker(broker.bootstrap, "split", "readings")
    workers = [a, b]
    try:
        wait_until(
            lambda: len(a.assignment) == 2 and len(b.assignment) == 2 and len(a.values) + len(b.values) == 40,
            workers,
            30,
            "an even split and all first messages",
        )
        assert sorted(a.assignment + b.assignment) == [0, 1, 2, 3]
        assert sorted(a.values + b.values) == sorted(first)

        b.proc.kill()  # no LeaveGroup: the coordinator must notice the silence
        b.proc.wait(10)
        killed_at = time.monotonic()
        second = [f"second-{i}" for i in range(40)]
        produce(broker.bootstrap, "readings", second)
        wait_until(
            lambda: a.assignment == [0, 1, 2, 3] and len(a.values) + len(b.values) == 80,
            workers,
            40,
            "the survivor to own every partition and read the rest",
        )
        assert time.monotonic() - killed_at > 5  # only after the 6 s session timeout, not before
        consumed = a.values + b.values
        assert sorted(consumed) == sorted(first + second)  # nothing skipped
        assert len(consumed) == len(set(consumed))  # nothing consumed twice
    finally:
        for worker in workers:
            worker.proc.kill()
            worker.proc.wait(10)


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
def test_each_client_side_assignor_splits_and_hands_over_on_close(broker: BrokerProcess, strategy: str) -> None:
    from confluent_kafka import Consumer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic("tides", 4, 1)]).values():
        future.result(10)

    def member(name: str) -> Consumer:
        consumer = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": f"assign-{strategy}",
                "client.id": name,
                "partition.assignment.strategy": strategy,
                "heartbeat.interval.ms": 300,
            }
        )
        consumer.subscribe(["tides"])
        return consumer

    def owned(consumer: Consumer) -> list[int]:
        return sorted(tp.partition for tp in consumer.assignment())

    one, two = member("one"), member("two")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (len(owned(one)) == 2 and len(owned(two)) == 2):
        one.poll(0.05)
        two.poll(0.05)
    assert sorted(owned(one) + owned(two)) == [0, 1, 2, 3] and len(owned(one)) == 2

    two.close()  # a clean LeaveGroup: the survivor takes over without waiting for a session timeout
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and owned(one) != [0, 1, 2, 3]:
        one.poll(0.05)
    assert owned(one) == [0, 1, 2, 3]
    one.close()


def test_restarted_static_member_gets_its_partitions_back_without_a_rebalance(broker: BrokerProcess) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic("static", 4, 1)]).values():
        future.result(10)
    a = Worker(broker.bootstrap, "statics", "static", "host-a")
    b = Worker(broker.bootstrap, "statics", "static", "host-b")
    workers = [a, b]
    try:
        wait_until(lambda: len(a.assignment) == 2 and len(b.assignment) == 2, workers, 30, "an even split")
        b_partitions = b.assignment
        b.proc.kill()  # a static member that dies and comes back within its session timeout (6 s)
        b.proc.wait(10)
        b_again = Worker(broker.bootstrap, "statics", "static", "host-b")
        workers.append(b_again)
        wait_until(lambda: b_again.assignment == b_partitions, workers, 30, "host-b's partitions back")
        time.sleep(1)  # give a (wrong) rebalance time to show up at a's next heartbeats
        a.drain()
        assert len(a.assignments) == 1, broker.log_tail(30)  # a was never revoked nor reassigned
    finally:
        for worker in workers:
            worker.proc.kill()
            worker.proc.wait(10)


def test_running_consumer_carries_on_across_a_broker_kill_and_restart(tmp_path: Path) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    data_dir, port = tmp_path / "broker", free_port()
    broker = BrokerProcess(data_dir, port).start()
    worker = None
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for future in admin.create_topics([NewTopic("readings", 4, 1)]).values():
            future.result(10)
        first = [f"first-{i}" for i in range(20)]
        produce(broker.bootstrap, "readings", first)
        worker = Worker(broker.bootstrap, "steady", "readings")
        wait_until(lambda: len(worker.values) == 20, [worker], 30, "the first messages")

        broker.kill()  # the group's state and offsets must come back from disk
        broker = BrokerProcess(data_dir, port).start()
        second = [f"second-{i}" for i in range(20)]
        produce(broker.bootstrap, "readings", second)
        wait_until(lambda: len(worker.values) >= 40, [worker], 60, "the messages after the restart")
        time.sleep(0.5)
        worker.drain()
        assert sorted(worker.values) == sorted(first + second), broker.log_tail(20)  # nothing lost or twice
        assert worker.assignments == [[0, 1, 2, 3]]  # the restored Stable group needed no rebalance
    finally:
        if worker is not None:
            worker.proc.kill()
            worker.proc.wait(10)
        broker.stop()
