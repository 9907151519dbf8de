"""Each client family commits in a group and resumes there: after a consumer restart, after a kill -9 of the
broker (committed offsets must survive the crash) and after a clean broker restart.
Clients: kafka-python, aiokafka, kcat -G, confluent-kafka.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import free_port
from tidepool.broker.process import BrokerProcess

pytestmark = [pytest.mark.timeout(120), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

TOPIC = "oceanic"
VALUES = [f"m{i:02d}" for i in range(40)]


def consume_kafka_python(bootstrap: str, group: str, count: int) -> list[str]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    got: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < count and time.monotonic() < deadline:
            batches = consumer.poll(timeout_ms=200, max_records=count - len(got))
            for records in batches.values():
                got.extend(r.value.decode() for r in records)
        consumer.commit()
    finally:
        consumer.close()
    return got


def consume_aiokafka(bootstrap: str, group: str, count: int) -> list[str]:
    from aiokafka import AIOKafkaConsumer

    async def run() -> list[str]:
        consumer = AIOKafkaConsumer(
            TOPIC,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        got: list[str] = []
        try:
            while len(got) < count:
                record = await asyncio.wait_for(consumer.getone(), 30)
                got.append(record.value.decode())
            await consumer.commit()
        finally:
            await consumer.stop()
        return got

    return asyncio.run(run())


def consume_kcat(bootstrap: str, group: str, count: int) -> list[str]:
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.skip("kcat is not installed")
    argv = [kcat, "-b", bootstrap, "-G", group, "-c", str(count), "-f", "%s\\n", "-q"]
    argv += ["-X", "auto.offset.reset=earliest", TOPIC]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def consume_confluent(bootstrap: str, group: str, count: int) -> list[str]:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([TOPIC])
    got: list[str] = []
    last = None
    deadline = time.monotonic() + 30
    try:
        while len(got) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            got.append(message.value().decode())
            last = message
        if last is not None:
            consumer.commit(message=last, asynchronous=False)
    finally:
        consumer.close()
    return got


CLIENTS: dict[str, Callable[[str, str, int], list[str]]] = {
    "kafka-python": consume_kafka_python,
    "aiokafka": consume_aiokafka,
    "kcat": consume_kcat,
    "confluent-kafka": consume_confluent,
}


@pytest.mark.parametrize(
    "client", [pytest.param(name, marks=pytest.mark.interop) if name == "kcat" else name for name in CLIENTS]
)
def test_group_resumes_after_consumer_restart_and_broker_kill(tmp_path: Path, client: str) -> None:
    from confluent_kafka import Producer

    consume = CLIENTS[client]
    data_dir, port = tmp_path / "broker", free_port()
    broker = BrokerProcess(data_dir, port, "--partitions", "1").start()
    try:
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        for value in VALUES:
            producer.produce(TOPIC, value.encode())
        assert producer.flush(10) == 0

        assert consume(broker.bootstrap, "resumers", 10) == VALUES[:10]
        assert consume(broker.bootstrap, "resumers", 10) == VALUES[10:20]  # a new consumer resumes

        broker.kill()  # SIGKILL: no clean shutdown, the offsets must already be on disk
        broker = BrokerProcess(data_dir, port, "--partitions", "1").start()
        assert consume(broker.bootstrap, "resumers", 10) == VALUES[20:30]

        assert broker.stop() == 0  # and a clean restart
        broker = BrokerProcess(data_dir, port, "--partitions", "1").start()
        assert consume(broker.bootstrap, "resumers", 10) == VALUES[30:]
    finally:
        broker.stop()
