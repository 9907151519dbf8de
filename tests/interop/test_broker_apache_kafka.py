"""Apache Kafka 4.x both ways: its own CLI tools against tidepool, and tidepool's CLI tools against a real
single-node KRaft Apache Kafka (the scale-out path)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.interop.apache_kafka import (
    CONFIGS,
    CONSOLE_CONSUMER,
    CONSOLE_PRODUCER,
    DELETE_RECORDS,
    GET_OFFSETS,
    TOPICS,
    ApacheKafka,
    apache_kafka,  # noqa: F401 - the fixture
    run_tool,
)
from tidepool.broker.process import BrokerProcess

pytestmark = [pytest.mark.interop, pytest.mark.slow]


@pytest.fixture(scope="module")
def tidepool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    with BrokerProcess(tmp_path_factory.mktemp("tidepool") / "data", free_port()) as process:
        yield process


def tidepool_cli(*args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidepool", *args], input=input, capture_output=True, text=True, timeout=timeout
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


def record_timestamps(bootstrap: str, topic: str, count: int) -> list[int]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    stamps: list[int] = []
    for _ in range(50):
        stamps.extend(m.timestamp()[1] for m in consumer.consume(count, 0.2) if m.error() is None)
        if len(stamps) >= count:
            break
    consumer.close()
    return stamps


def test_kafka_topics_tool_creates_lists_describes_and_deletes_on_tidepool(tidepool: BrokerProcess) -> None:
    server = ["--bootstrap-server", tidepool.bootstrap]
    created = ok(
        run_tool(TOPICS, [*server, "--create", "--topic", "oceanic", "--partitions", "3", "--replication-factor", "1"])
    )
    assert "Created topic oceanic." in created
    assert "oceanic" in ok(run_tool(TOPICS, [*server, "--list"])).split()
    described = ok(run_tool(TOPICS, [*server, "--describe", "--topic", "oceanic"]))
    assert "PartitionCount: 3" in described and "ReplicationFactor: 1" in described
    assert described.count("Leader: 1") == 3
    again = run_tool(TOPICS, [*server, "--create", "--topic", "oceanic", "--partitions", "1"])
    assert again.returncode != 0 and "already exists" in again.stdout + again.stderr
    ok(run_tool(TOPICS, [*server, "--alter", "--topic", "oceanic", "--partitions", "4"]))
    assert "PartitionCount: 4" in ok(run_tool(TOPICS, [*server, "--describe", "--topic", "oceanic"]))
    ok(run_tool(TOPICS, [*server, "--create", "--topic", "kept", "--config", "retention.ms=3600000"]))
    assert "retention.ms=3600000" in ok(run_tool(TOPICS, [*server, "--describe", "--topic", "kept"]))
    entity = [*server, "--entity-type", "topics", "--entity-name", "kept"]
    ok(run_tool(CONFIGS, [*entity, "--alter", "--add-config", "retention.ms=7200000,segment.bytes=1048576"]))
    described = ok(run_tool(CONFIGS, [*entity, "--describe"]))
    assert "retention.ms=7200000" in described and "segment.bytes=1048576" in described
    ok(run_tool(CONFIGS, [*entity, "--alter", "--delete-config", "segment.bytes"]))
    described = ok(run_tool(CONFIGS, [*entity, "--describe"]))
    assert "retention.ms=7200000" in described and "segment.bytes" not in described
    compacted = run_tool(TOPICS, [*server, "--create", "--topic", "compacted", "--config", "cleanup.policy=compact"])
    assert (
        compacted.returncode != 0 and "cleanup.policy=compact is not supported" in compacted.stdout + compacted.stderr
    )
    ok(run_tool(TOPICS, [*server, "--delete", "--topic", "oceanic"]))
    assert "oceanic" not in ok(run_tool(TOPICS, [*server, "--list"])).split()


def test_kafka_console_producer_and_consumer_work_on_tidepool(tidepool: BrokerProcess) -> None:
    server = ["--bootstrap-server", tidepool.bootstrap]
    lines = [f"reading {i} from the java producer" for i in range(20)]
    ok(run_tool(TOPICS, [*server, "--create", "--topic", "java-io", "--partitions", "1"]))
    ok(
        run_tool(
            CONSOLE_PRODUCER,
            [*server, "--topic", "java-io", "--property", "parse.key=true", "--property", "key.separator=:"],
            input="".join(f"k{i}:{line}\n" for i, line in enumerate(lines)),
        )
    )
    consumed = ok(
        run_tool(
            CONSOLE_CONSUMER,
            [
                *server,
                "--topic",
                "java-io",
                "--partition",
                "0",
                "--offset",
                "earliest",
                "--max-messages",
                "20",
                "--timeout-ms",
                "20000",
                "--property",
                "print.key=true",
                "--property",
                "key.separator=|",
            ],
        )
    )
    assert consumed.splitlines() == [f"k{i}|{line}" for i, line in enumerate(lines)]
    if importlib.util.find_spec("tidepool.broker.groups.api") is not None:
        # kafka-console-consumer's usual form: in a (generated) consumer group
        grouped = ok(
            run_tool(
                CONSOLE_CONSUMER,
                [*server, "--topic", "java-io", "--from-beginning", "--max-messages", "20", "--timeout-ms", "20000"],
            )
        )
        assert grouped.splitlines() == lines
    timestamps = record_timestamps(tidepool.bootstrap, "java-io", 20)
    first_newest = timestamps.index(max(timestamps))
    for time_spec, offset in (("-2", 0), ("-1", 20), ("-3", first_newest)):
        shown = ok(run_tool(GET_OFFSETS, [*server, "--topic", "java-io", "--time", time_spec]))
        assert shown.split() == [f"java-io:0:{offset}"], time_spec
    plan = tidepool.data_dir.parent / "delete-records.json"
    plan.write_text('{"version": 1, "partitions": [{"topic": "java-io", "partition": 0, "offset": 5}]}')
    deleted = ok(run_tool(DELETE_RECORDS, [*server, "--offset-json-file", str(plan)]))
    assert "low_watermark: 5" in deleted
    assert ok(run_tool(GET_OFFSETS, [*server, "--topic", "java-io", "--time", "-2"])).split() == ["java-io:0:5"]
    # the records left, read by tidepool's own consumer
    ours = ok(
        tidepool_cli(
            "console-consumer",
            "--bootstrap-server",
            tidepool.bootstrap,
            "--topic",
            "java-io",
            "--from-beginning",
            "--max-messages",
            "15",
        )
    )
    assert ours.splitlines() == lines[5:]


def test_tidepool_tools_work_against_apache_kafka(apache_kafka: ApacheKafka) -> None:  # noqa: F811
    server = ["--bootstrap-server", apache_kafka.bootstrap]
    topic = f"oceanic-{uuid.uuid4().hex[:6]}"
    created = ok(
        tidepool_cli("topics", "create", *server, "--topic", topic, "--partitions", "1", "--replication-factor", "1")
    )
    assert created.strip() == f"Created topic {topic}."
    assert topic in ok(tidepool_cli("topics", "list", *server)).split()
    described = ok(tidepool_cli("topics", "describe", *server, "--topic", topic))
    assert f"Topic: {topic}\tPartitionCount: 1\tReplicationFactor: 1" in described
    lines = [f'{{"sensor": "buoy-{i}", "temp": {20 + i}}}' for i in range(10)]
    ok(tidepool_cli("console-producer", *server, "--topic", topic, input="\n".join(lines) + "\n"))
    consumed = ok(
        tidepool_cli("console-consumer", *server, "--topic", topic, "--from-beginning", "--max-messages", "10")
    )
    assert consumed.splitlines() == lines
    grouped = ok(
        tidepool_cli(
            "console-consumer",
            *server,
            "--topic",
            topic,
            "--from-beginning",
            "--max-messages",
            "10",
            "--group",
            "tidepool-cli-test",
        )
    )
    assert grouped.splitlines() == lines
    # Kafka's own tool sees what tidepool's producer wrote
    java = ok(
        run_tool(
            CONSOLE_CONSUMER,
            [
                *server,
                "--topic",
                topic,
                "--partition",
                "0",
                "--offset",
                "earliest",
                "--max-messages",
                "10",
                "--timeout-ms",
                "20000",
            ],
        )
    )
    assert java.splitlines() == lines
    ok(tidepool_cli("topics", "delete", *server, "--topic", topic))
    assert topic not in ok(tidepool_cli("topics", "list", *server)).split()


@pytest.mark.parametrize("codec", ["snappy", "zstd"])
def test_java_compressed_batches_reach_librdkafka_intact_on_an_auto_created_topic(
    tidepool: BrokerProcess, codec: str
) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    topic = f"java-{codec}"
    lines = [f"{codec} line {i} " + "x" * i for i in range(50)]
    ok(
        run_tool(
            CONSOLE_PRODUCER,
            ["--bootstrap-server", tidepool.bootstrap, "--topic", topic, "--compression-codec", codec],
            input="\n".join(lines) + "\n",
        )
    )
    consumer = Consumer({"bootstrap.servers": tidepool.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    values: list[bytes] = []
    for _ in range(50):
        values.extend(m.value() for m in consumer.consume(100, 0.2) if m.error() is None)
        if len(values) >= len(lines):
            break
    consumer.close()
    assert [v.decode() for v in values] == lines
