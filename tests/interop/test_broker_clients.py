"""Real Kafka clients against a real `tidepool broker` process: every codec, keys, headers, timestamps, offsets."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tidepool.broker.process import BrokerProcess

pytestmark = pytest.mark.interop

COUNT = 60
BASE_TS = 1_700_000_000_000
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    with BrokerProcess(tmp_path_factory.mktemp("broker") / "data", free_port()) as process:
        yield process
    assert process.proc is not None and process.proc.returncode == 0, process.log_tail()


def expected(topic: str, with_timestamps: bool = True) -> list[tuple[int, bytes, bytes, list[tuple[str, bytes]], int]]:
    return [
        (
            i,
            f"key-{i % 7}".encode(),
            f"{topic} value {i} ".encode() * 3,
            [("seq", str(i).encode()), ("src", b"t")],
            BASE_TS + i if with_timestamps else -1,
        )
        for i in range(COUNT)
    ]


def read_with_confluent(bootstrap: str, topic: str, count: int) -> list[tuple[int, bytes, bytes, list, int]]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got = []
    try:
        for _ in range(100):
            for msg in consumer.consume(count, 0.2):
                assert msg.error() is None, msg.error()
                got.append((msg.offset(), msg.key(), msg.value(), list(msg.headers() or []), msg.timestamp()[1]))
            if len(got) >= count:
                break
    finally:
        consumer.close()
    return got


def check(got: list, topic: str, with_timestamps: bool = True) -> None:
    want = expected(topic, with_timestamps)
    assert [g[0] for g in got] == list(range(COUNT)), "offsets are contiguous from 0, nothing lost or duplicated"
    if with_timestamps:
        assert got == want
    else:
        assert [g[:4] for g in got] == [w[:4] for w in want]
        assert all(g[4] > BASE_TS for g in got)


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_kafka_produces_and_consumes(broker: BrokerProcess, codec: str) -> None:
    from confluent_kafka import Producer

    topic = f"confluent-{codec}"
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap, "compression.type": codec, "linger.ms": 20, "enable.idempotence": True}
    )
    failures: list[object] = []
    for _, key, value, headers, ts in expected(topic):
        producer.produce(
            topic,
            value=value,
            key=key,
            headers=headers,
            timestamp=ts,
            on_delivery=lambda err, _m: err is not None and failures.append(err),
        )
    assert producer.flush(20) == 0
    assert failures == []
    check(read_with_confluent(broker.bootstrap, topic, COUNT), topic)


@pytest.mark.parametrize("codec", ["none", "gzip", "lz4", "zstd"])  # kafka-python needs python-snappy for snappy
def test_kafka_python_produces_and_consumes(broker: BrokerProcess, codec: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = f"kafka-python-{codec}"
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap, compression_type=None if codec == "none" else codec, linger_ms=20
    )
    futures = [
        producer.send(topic, value=value, key=key, headers=headers, timestamp_ms=ts)
        for _, key, value, headers, ts in expected(topic)
    ]
    producer.flush(20)
    assert [f.get(10).offset for f in futures] == list(range(COUNT))
    producer.close(5)
    assert "for client kafka-python-producer" in broker.log_tail(2000), "idempotent by default: InitProducerId"
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    got = []
    for msg in consumer:
        got.append((msg.offset, msg.key, msg.value, list(msg.headers), msg.timestamp))
        if len(got) == COUNT:
            break
    consumer.close()
    check(got, topic)
    check(read_with_confluent(broker.bootstrap, topic, COUNT), topic)


@pytest.mark.parametrize("codec", CODECS)
def test_aiokafka_produces_and_consumes(broker: BrokerProcess, codec: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = f"aiokafka-{codec}"

    async def run() -> list:
        producer = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap, compression_type=None if codec == "none" else codec, linger_ms=20
        )
        await producer.start()
        try:
            batch = [
                await producer.send(topic, value=v, key=k, headers=h, timestamp_ms=ts)
                for _, k, v, h, ts in expected(topic)
            ]
            metadata = await asyncio.gather(*batch)
            assert [m.offset for m in metadata] == list(range(COUNT))
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
        await consumer.start()
        got = []
        try:
            partition = TopicPartition(topic, 0)
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            while len(got) < COUNT:
                records = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 10)
                for msg in records.get(partition, []):
                    got.append((msg.offset, msg.key, msg.value, list(msg.headers), msg.timestamp))
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(asyncio.wait_for(run(), 60))
    check(got, topic)
    check(read_with_confluent(broker.bootstrap, topic, COUNT), topic)


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_produces_and_consumes(broker: BrokerProcess, codec: str, tmp_path: Path) -> None:
    if shutil.which("kcat") is None:
        pytest.skip("kcat is not installed (apt-get install kcat)")
    topic = f"kcat-{codec}"
    for _, key, value, headers, _ in expected(topic, with_timestamps=False):
        header_args = [arg for name, val in headers for arg in ("-H", f"{name}={val.decode()}")]
        subprocess.run(
            ["kcat", "-P", "-b", broker.bootstrap, "-t", topic, "-p", "0", "-z", codec, "-K", "\t", *header_args],
            input=key + b"\t" + value + b"\n",
            check=True,
            timeout=30,
            capture_output=True,
        )
    consumed = subprocess.run(
        [
            "kcat",
            "-C",
            "-b",
            broker.bootstrap,
            "-t",
            topic,
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%o\t%k\t%s\t%T\n",
        ],
        check=True,
        timeout=30,
        capture_output=True,
    ).stdout
    rows = [line.split(b"\t") for line in consumed.splitlines()]
    want = expected(topic, with_timestamps=False)
    assert [int(r[0]) for r in rows] == list(range(COUNT))
    assert [(r[1], r[2]) for r in rows] == [(w[1], w[2].rstrip(b"\n")) for w in want]
    assert all(int(r[3]) > BASE_TS for r in rows)
    check(read_with_confluent(broker.bootstrap, topic, COUNT), topic, with_timestamps=False)


def test_aiokafka_idempotent_producer_is_accepted(broker: BrokerProcess) -> None:
    from aiokafka import AIOKafkaProducer

    topic = "aiokafka-idempotent"

    async def run() -> list[int]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, linger_ms=5)
        await producer.start()
        try:
            sent = [
                await producer.send(topic, value=v, key=k, headers=h, timestamp_ms=ts)
                for _, k, v, h, ts in expected(topic)
            ]
            return [m.offset for m in await asyncio.gather(*sent)]
        finally:
            await producer.stop()

    assert asyncio.run(asyncio.wait_for(run(), 60)) == list(range(COUNT))
    check(read_with_confluent(broker.bootstrap, topic, COUNT), topic)


def tidepool_cli(*args: str, input: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tidepool", *args], input=input, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_console_consumer_with_a_group_resumes_after_its_committed_offset(broker: BrokerProcess) -> None:
    pytest.importorskip("tidepool.broker.groups.api", reason="the group coordinator is not installed")
    server = ["--bootstrap-server", broker.bootstrap]
    tidepool_cli("topics", "create", *server, "--topic", "console-group", "--partitions", "2")
    tidepool_cli("console-producer", *server, "--topic", "console-group", input="a\nb\nc\nd\n")
    first = tidepool_cli(
        "console-consumer",
        *server,
        "--topic",
        "console-group",
        "--from-beginning",
        "--group",
        "cg",
        "--max-messages",
        "4",
    )
    assert sorted(first.split()) == ["a", "b", "c", "d"]
    tidepool_cli("console-producer", *server, "--topic", "console-group", input="e\nf\n")
    second = tidepool_cli(
        "console-consumer",
        *server,
        "--topic",
        "console-group",
        "--from-beginning",
        "--group",
        "cg",
        "--max-messages",
        "2",
        "--timeout-ms",
        "15000",
    )
    assert sorted(second.split()) == ["e", "f"]


def test_offsets_for_times_finds_the_exact_record_inside_compressed_batches(broker: BrokerProcess) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = "by-time"
    producer = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "zstd", "linger.ms": 50})
    for i in range(COUNT):
        producer.produce(topic, value=b"v%d" % i, timestamp=BASE_TS + 10 * i)
    assert producer.flush(20) == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    try:
        found = [
            consumer.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)[0]
            for ts in (BASE_TS + 175, BASE_TS + 10 * COUNT)
        ]
    finally:
        consumer.close()
    assert found[0].offset == 18, "first record at or after the time, not the start of its batch"
    assert found[1].offset == -1


def test_a_message_near_the_size_limit_reaches_a_consumer_with_small_fetch_limits(broker: BrokerProcess) -> None:
    from confluent_kafka import Producer
    from kafka import KafkaConsumer, TopicPartition

    big = bytes(range(256)) * 3900  # 998400 bytes, under max.message.bytes
    producer = Producer({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 1_000_000})
    producer.produce("big", value=big)
    producer.produce("big", value=b"after")
    assert producer.flush(20) == 0
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
        max_partition_fetch_bytes=1024,
        fetch_max_bytes=1024,
    )
    consumer.assign([TopicPartition("big", 0)])
    consumer.seek_to_beginning()
    values = [m.value for _, m in zip(range(2), consumer, strict=False)]
    consumer.close()
    assert values == [big, b"after"], "a batch larger than the fetch limits is still returned whole (KIP-74)"


def test_keyed_messages_over_several_partitions_keep_per_partition_order(broker: BrokerProcess) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("keyed", num_partitions=4, replication_factor=1)])["keyed"].result(10)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "enable.idempotence": True})
    total = 4000
    for i in range(total):
        producer.produce("keyed", key=b"sensor-%d" % (i % 13), value=b"%d" % i)
        producer.poll(0)
    assert producer.flush(20) == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition("keyed", p, OFFSET_BEGINNING) for p in range(4)])
    by_partition: dict[int, list[tuple[int, bytes, int]]] = {}
    received = 0
    for _ in range(200):
        for msg in consumer.consume(total, 0.2):
            assert msg.error() is None
            by_partition.setdefault(msg.partition(), []).append((msg.offset(), msg.key(), int(msg.value())))
            received += 1
        if received >= total:
            break
    consumer.close()
    assert received == total and len(by_partition) > 1
    seen: dict[bytes, int] = {}
    for rows in by_partition.values():
        assert [r[0] for r in rows] == list(range(len(rows))), "offsets contiguous per partition"
        for _, key, value in rows:
            assert value > seen.get(key, -1), "a key's messages keep their order"
            seen[key] = value
    assert sorted(v for rows in by_partition.values() for _, _, v in rows) == list(range(total))


def test_console_tools_carry_keys_and_print_them(broker: BrokerProcess) -> None:
    server = ["--bootstrap-server", broker.bootstrap]
    tidepool_cli(
        "console-producer",
        *server,
        "--topic",
        "console-keys",
        "--property",
        "parse.key=true",
        "key.separator=:",  # several NAME=VALUE may follow one --property
        input="buoy-1:21.5\nbuoy-2:19.0\nbuoy-1:21.7\n",
    )
    printed = tidepool_cli(
        "console-consumer",
        *server,
        "--topic",
        "console-keys",
        "--from-beginning",
        "--max-messages",
        "3",
        "--property",
        "print.key=true",
        "--property",
        "print.offset=true",
        "--property",
        "key.separator=|",
    )
    assert printed.splitlines() == ["Offset:0|buoy-1|21.5", "Offset:1|buoy-2|19.0", "Offset:2|buoy-1|21.7"]
    missing_separator = subprocess.run(
        [
            sys.executable,
            "-m",
            "tidepool",
            "console-producer",
            *server,
            "--topic",
            "console-keys",
            "--property",
            "parse.key=true",
        ],
        input="no separator here\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing_separator.returncode == 1
    assert "No key separator found on line" in missing_separator.stderr


def test_concurrent_producers_and_a_tailing_consumer_see_every_message_once(broker: BrokerProcess) -> None:
    import threading

    from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("busy", num_partitions=2, replication_factor=1)])["busy"].result(10)
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "unused",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.assign([TopicPartition("busy", p, OFFSET_END) for p in range(2)])
    consumer.consume(1, 1.0)  # resolve the end offsets before anything is produced
    per_producer = 2000

    def run(name: str) -> None:
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 1, "enable.idempotence": True})
        for i in range(per_producer):
            producer.produce("busy", value=f"{name}:{i}".encode(), partition=i % 2)
            producer.poll(0)
        assert producer.flush(20) == 0

    threads = [threading.Thread(target=run, args=(f"p{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while len(seen) < 3 * per_producer and time.monotonic() < deadline:
        seen.extend(m.value().decode() for m in consumer.consume(1000, 0.2) if m.error() is None)
    for thread in threads:
        thread.join(10)
    consumer.close()
    assert sorted(seen) == sorted(f"p{n}:{i}" for n in range(3) for i in range(per_producer))
    for n in range(3):
        for parity in range(2):
            mine = [int(v.split(":")[1]) for v in seen if v.startswith(f"p{n}:") and int(v.split(":")[1]) % 2 == parity]
            assert mine == sorted(mine), "each producer's messages stay in order within a partition"
