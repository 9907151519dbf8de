"""A real `tidepool broker` process spoken to over raw sockets: every advertised version, error codes on the wire,
long-poll fetch, idempotent retries, crash recovery (SIGKILL) and fuzzed frames."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka.record.default_records import DefaultRecordBatchBuilder
from kio.index import load_request_schema
from kio.schema.errors import ErrorCode

from tests.conftest import free_port
from tidepool.broker.process import BrokerProcess
from tidepool.broker.protocol.codec import build, decode_response, encode_request
from tidepool.broker.protocol.records import iter_headers


class Client:
    """A minimal blocking Kafka client: one request at a time, kio entities in and out."""

    def __init__(self, bootstrap: str) -> None:
        host, _, port = bootstrap.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.correlation_id = 0

    def send_raw(self, payload: bytes) -> None:
        self.sock.sendall(payload)

    def read_frame(self) -> bytes:
        size = struct.unpack(">i", self._exactly(4))[0]
        return self._exactly(size)

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed by broker")
            data += chunk
        return data

    def request(self, api_key: int, version: int, body: dict[str, Any]) -> Any:
        self.correlation_id += 1
        body_cls = load_request_schema(api_key, version)
        header = body_cls.__header_schema__(
            request_api_key=api_key,
            request_api_version=version,
            correlation_id=self.correlation_id,
            client_id="raw-test",
        )
        self.send_raw(encode_request(header, build(body_cls, body)))
        correlation_id, response = decode_response(self.read_frame(), api_key, version)
        assert correlation_id == self.correlation_id
        return response

    def close(self) -> None:
        self.sock.close()


def records(count: int = 3, producer_id: int = -1, epoch: int = -1, sequence: int = -1) -> bytes:
    """A batch stamped now: producer state expires a day after a producer's newest timestamp, as in Kafka."""
    builder = DefaultRecordBatchBuilder(2, 0, False, producer_id, epoch, sequence, 1 << 20)
    for i in range(count):
        builder.append(i, timestamp=int(time.time() * 1000) + i, key=None, value=b"value-%d" % i, headers=[])
    return bytes(builder.build())


def produce(client: Client, topic: str, data: bytes, version: int = 9, acks: int = -1) -> Any:
    response = client.request(
        0,
        version,
        {
            "transactional_id": None,
            "acks": acks,
            "timeout": 5000,
            "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": data}]}],
        },
    )
    return response.responses[0].partition_responses[0]


def fetch(
    client: Client,
    topic: str,
    offset: int,
    version: int = 12,
    max_wait_ms: int = 0,
    min_bytes: int = 1,
    max_bytes: int = 1 << 20,
) -> Any:
    response = client.request(
        1,
        version,
        {
            "replica_id": -1,
            "max_wait": max_wait_ms,
            "min_bytes": min_bytes,
            "max_bytes": max_bytes,
            "isolation_level": 1,
            "session_id": 0,
            "session_epoch": -1,
            "topics": [
                {
                    "topic": topic,
                    "partitions": [
                        {
                            "partition": 0,
                            "current_leader_epoch": -1,
                            "fetch_offset": offset,
                            "log_start_offset": -1,
                            "partition_max_bytes": max_bytes,
                        }
                    ],
                }
            ],
            "forgotten_topics_data": [],
            "rack_id": "",
        },
    )
    return response.responses[0].partitions[0]


def create_topic(client: Client, topic: str, partitions: int = 1) -> None:
    response = client.request(
        19,
        5,
        {
            "topics": [
                {"name": topic, "num_partitions": partitions, "replication_factor": 1, "assignments": [], "configs": []}
            ],
            "timeout": 5000,
            "validate_only": False,
        },
    )
    assert response.topics[0].error_code == ErrorCode.none


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path / "data", free_port(), "--fsync", "never").start()
    yield process
    process.stop()


@pytest.fixture
def client(broker: BrokerProcess) -> Iterator[Client]:
    c = Client(broker.bootstrap)
    yield c
    c.close()


def test_every_advertised_version_of_every_api_answers(client: Client) -> None:
    advertised = client.request(18, 0, {}).api_keys
    ranges = {k.api_key: (k.min_version, k.max_version) for k in advertised}
    assert ranges[0] == (3, 9) and ranges[1] == (4, 12) and ranges[18] == (0, 4)
    assert not {24, 25, 26, 28} & set(ranges), "transaction APIs are not advertised"
    create_topic(client, "versions")
    for version in range(ranges[18][0], ranges[18][1] + 1):
        assert (
            client.request(18, version, {"client_software_name": "t", "client_software_version": "1"}).error_code
            == ErrorCode.none
        )
    for version in range(ranges[3][0], ranges[3][1] + 1):
        metadata = client.request(3, version, {"topics": [{"name": "versions"}], "allow_auto_topic_creation": False})
        assert metadata.topics[0].error_code == ErrorCode.none and metadata.brokers[0].port > 0
    for version in range(ranges[0][0], ranges[0][1] + 1):
        assert produce(client, "versions", records(1), version).error_code == ErrorCode.none
    produced = ranges[0][1] - ranges[0][0] + 1
    for version in range(ranges[1][0], ranges[1][1] + 1):
        partition = fetch(client, "versions", 0, version)
        assert partition.error_code == ErrorCode.none and partition.high_watermark == produced
        assert len(iter_headers(partition.records)) == produced
    for version in range(ranges[2][0], ranges[2][1] + 1):
        response = client.request(
            2,
            version,
            {
                "replica_id": -1,
                "isolation_level": 0,
                "topics": [
                    {
                        "name": "versions",
                        "partitions": [
                            {"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1, "max_num_offsets": 1}
                        ],
                    }
                ],
            },
        )
        assert response.topics[0].partitions[0].offset == produced
    for version in range(ranges[22][0], ranges[22][1] + 1):
        response = client.request(
            22,
            version,
            {"transactional_id": None, "transaction_timeout": 60000, "producer_id": -1, "producer_epoch": -1},
        )
        assert response.error_code == ErrorCode.none and response.producer_id >= 0
    for version in range(ranges[32][0], ranges[32][1] + 1):
        response = client.request(
            32,
            version,
            {
                "resources": [{"resource_type": 2, "resource_name": "versions", "configuration_keys": None}],
                "include_synonyms": False,
                "include_documentation": False,
            },
        )
        assert {c.name for c in response.results[0].configs} >= {"retention.ms", "segment.bytes"}
    for version in range(ranges[21][0], ranges[21][1] + 1):
        response = client.request(
            21,
            version,
            {
                "topics": [{"name": "versions", "partitions": [{"partition_index": 0, "offset": version}]}],
                "timeout": 5000,
            },
        )
        assert response.topics[0].partitions[0].low_watermark == version
    for version in range(ranges[33][0], ranges[33][1] + 1):
        response = client.request(
            33,
            version,
            {
                "validate_only": False,
                "resources": [
                    {
                        "resource_type": 2,
                        "resource_name": "versions",
                        "configs": [{"name": "retention.ms", "value": str(1000 + version)}],
                    }
                ],
            },
        )
        assert response.responses[0].error_code == ErrorCode.none
    for version in range(ranges[44][0], ranges[44][1] + 1):
        response = client.request(
            44,
            version,
            {
                "validate_only": False,
                "resources": [
                    {
                        "resource_type": 2,
                        "resource_name": "versions",
                        "configs": [{"name": "segment.bytes", "config_operation": 0, "value": str(65536 + version)}],
                    }
                ],
            },
        )
        assert response.responses[0].error_code == ErrorCode.none
    configs = client.request(
        32,
        4,
        {
            "resources": [
                {
                    "resource_type": 2,
                    "resource_name": "versions",
                    "configuration_keys": ["retention.ms", "segment.bytes"],
                }
            ],
            "include_synonyms": False,
            "include_documentation": False,
        },
    )
    assert {c.name: c.value for c in configs.results[0].configs} == {
        "retention.ms": str(1000 + ranges[33][1]),
        "segment.bytes": str(65536 + ranges[44][1]),
    }
    for version in range(ranges[60][0], ranges[60][1] + 1):
        assert (
            client.request(60, version, {"include_cluster_authorized_operations": False, "endpoint_type": 1})
            .brokers[0]
            .broker_id
            == 1
        )
    for version in range(ranges[37][0], ranges[37][1] + 1):
        response = client.request(
            37,
            version,
            {
                "topics": [{"name": "versions", "count": 2 + version, "assignments": None}],
                "timeout": 5000,
                "validate_only": False,
            },
        )
        assert response.results[0].error_code == ErrorCode.none
    for version in range(ranges[19][0], ranges[19][1] + 1):
        response = client.request(
            19,
            version,
            {
                "topics": [
                    {
                        "name": f"created-{version}",
                        "num_partitions": -1,
                        "replication_factor": -1,
                        "assignments": [],
                        "configs": [],
                    }
                ],
                "timeout": 5000,
                "validate_only": False,
            },
        )
        assert response.topics[0].error_code == ErrorCode.none
    for version in range(ranges[20][0], ranges[20][1] + 1):
        body: dict[str, Any] = {
            "topic_names": [f"created-{version + 1}"],
            "timeout_ms": 5000,
            "topics": [{"name": f"created-{version + 1}", "topic_id": None}],
        }
        assert client.request(20, version, body).responses[0].error_code == ErrorCode.none


def test_bad_records_get_kafka_error_codes_and_leave_the_log_untouched(client: Client) -> None:
    create_topic(client, "strict")
    corrupt = bytearray(records())
    corrupt[-2] ^= 0xFF
    assert produce(client, "strict", bytes(corrupt)).error_code == ErrorCode.corrupt_message
    old_format = struct.pack(">qi", 0, 22) + struct.pack(">IbbqiI", 0, 1, 0, 0, -1, 1) + b"x" * 5
    assert produce(client, "strict", old_format).error_code == ErrorCode.unsupported_for_message_format
    assert produce(client, "nope", records()).error_code == ErrorCode.unknown_topic_or_partition
    assert produce(client, "strict", records()).base_offset == 0
    assert fetch(client, "strict", 0).high_watermark == 3
    assert fetch(client, "strict", 99).error_code == ErrorCode.offset_out_of_range


def test_idempotent_retry_gets_the_original_offset_and_gaps_are_out_of_order(client: Client) -> None:
    create_topic(client, "idem")
    pid = client.request(
        22, 4, {"transactional_id": None, "transaction_timeout": 60000, "producer_id": -1, "producer_epoch": -1}
    ).producer_id
    first = records(3, pid, 0, 0)
    assert produce(client, "idem", records(2)).base_offset == 0
    assert produce(client, "idem", first).base_offset == 2
    retried = produce(client, "idem", first)
    assert (retried.error_code, retried.base_offset) == (ErrorCode.none, 2)
    gap = produce(client, "idem", records(1, pid, 0, 7))
    assert gap.error_code == ErrorCode.out_of_order_sequence_number
    assert produce(client, "idem", records(1, pid, 0, 3)).base_offset == 5
    assert fetch(client, "idem", 0).high_watermark == 6


def test_fetch_long_polls_until_a_produce_arrives(broker: BrokerProcess, client: Client) -> None:
    create_topic(client, "poll")
    producer = Client(broker.bootstrap)
    timer = threading.Timer(0.4, lambda: produce(producer, "poll", records(2)))
    started = time.monotonic()
    timer.start()
    partition = fetch(client, "poll", 0, max_wait_ms=5000)
    waited = time.monotonic() - started
    timer.join()
    producer.close()
    assert len(iter_headers(partition.records)) == 1
    assert 0.3 < waited < 4.5, "woken by the append, not by the timeout"
    started = time.monotonic()
    assert fetch(client, "poll", 2, max_wait_ms=300).records in (b"", None)
    assert time.monotonic() - started >= 0.25


def test_fetch_respects_max_bytes_but_always_returns_one_whole_batch(client: Client) -> None:
    create_topic(client, "sizes")
    for _ in range(5):
        produce(client, "sizes", records(50))
    one = fetch(client, "sizes", 0, max_bytes=10)
    assert len(iter_headers(one.records)) == 1
    some = fetch(client, "sizes", 0, max_bytes=len(one.records) * 2 + 10)
    assert len(iter_headers(some.records)) == 2


@pytest.mark.parametrize(
    "flags",
    [["--fsync", "interval"], ["--fsync", "always"], ["--fsync", "interval", "--segment-bytes", "16384"]],
    ids=["fsync-interval", "fsync-always", "small-segments"],
)
def test_acknowledged_records_survive_sigkill_during_a_produce_stream(tmp_path: Path, flags: list[str]) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    process = BrokerProcess(tmp_path / "data", free_port(), *flags).start()
    acked: list[bytes] = []
    producer = Producer(
        {
            "bootstrap.servers": process.bootstrap,
            "acks": "all",
            "linger.ms": 2,
            "message.timeout.ms": 3000,
            "log_level": 0,
        }
    )

    def delivered(err: Any, msg: Any) -> None:
        if err is None:
            acked.append(msg.value())

    deadline = time.monotonic() + 20
    i = 0
    while len(acked) < 3000 and time.monotonic() < deadline:
        producer.produce("crash", value=b"message-%08d" % i, on_delivery=delivered)
        i += 1
        producer.poll(0)
        if i % 500 == 0:
            producer.poll(0.05)
    process.kill()
    producer.flush(5)
    assert len(acked) >= 3000
    segments = sorted((tmp_path / "data" / "crash-0").glob("*.log"))
    assert len(segments) > 1 or "--segment-bytes" not in flags, "small segments rolled during the stream"
    log_file = segments[-1]  # the active segment
    with open(log_file, "ab") as f:
        f.write(records(5)[:40])  # the torn tail a crash in mid-write leaves behind
    restarted = BrokerProcess(tmp_path / "data", process.port, *flags).start()
    try:
        assert "truncated a torn tail of 40 bytes" in restarted.log_tail(100)
        consumer = Consumer(
            {"bootstrap.servers": restarted.bootstrap, "group.id": "unused", "enable.auto.commit": False}
        )
        consumer.assign([TopicPartition("crash", 0, OFFSET_BEGINNING)])
        got: list[bytes] = []
        for _ in range(200):
            batch = consumer.consume(10000, 0.2)
            got.extend(m.value() for m in batch if m.error() is None)
            if len(got) >= i or (not batch and len(got) >= len(acked)):
                break
        consumer.close()
        assert got[: len(acked)] == acked, "every acknowledged record is there, in order"
        assert got == sorted(got) and len(set(got)) == len(got)
    finally:
        restarted.stop()


def test_random_and_mutated_frames_never_crash_the_server_or_corrupt_the_log(
    broker: BrokerProcess, client: Client
) -> None:
    create_topic(client, "fuzz")
    good = produce(client, "fuzz", records(4))
    assert good.base_offset == 0
    bodies: list[tuple[int, int, dict[str, Any]]] = [
        (
            0,
            9,
            {
                "transactional_id": None,
                "acks": -1,
                "timeout": 5000,
                "topic_data": [{"name": "fuzz", "partition_data": [{"index": 0, "records": records(2)}]}],
            },
        ),
        (
            0,
            3,
            {
                "transactional_id": None,
                "acks": 1,
                "timeout": 5000,
                "topic_data": [{"name": "fuzz", "partition_data": [{"index": 0, "records": records(2)}]}],
            },
        ),
        (
            1,
            12,
            {
                "replica_id": -1,
                "max_wait": 10,
                "min_bytes": 1,
                "max_bytes": 1000,
                "isolation_level": 0,
                "session_id": 0,
                "session_epoch": -1,
                "topics": [
                    {"topic": "fuzz", "partitions": [{"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1000}]}
                ],
                "forgotten_topics_data": [],
                "rack_id": "",
            },
        ),
        (3, 12, {"topics": [{"name": "fuzz"}], "allow_auto_topic_creation": True}),
        (3, 1, {"topics": [{"name": "fuzz"}]}),
        (18, 3, {"client_software_name": "fuzzer", "client_software_version": "1"}),
        (
            19,
            5,
            {
                "topics": [
                    {"name": "fz", "num_partitions": 1, "replication_factor": 1, "assignments": [], "configs": []}
                ],
                "timeout": 5000,
                "validate_only": True,
            },
        ),
        (
            2,
            7,
            {
                "replica_id": -1,
                "isolation_level": 0,
                "topics": [
                    {
                        "name": "fuzz",
                        "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": -2}],
                    }
                ],
            },
        ),
        (22, 4, {"transactional_id": None, "transaction_timeout": 1000, "producer_id": -1, "producer_epoch": -1}),
        (21, 2, {"topics": [{"name": "other", "partitions": [{"partition_index": 0, "offset": 1}]}], "timeout": 100}),
        (
            44,
            1,
            {
                "validate_only": True,
                "resources": [
                    {
                        "resource_type": 2,
                        "resource_name": "other",
                        "configs": [{"name": "retention.ms", "config_operation": 0, "value": "1000"}],
                    }
                ],
            },
        ),
    ]
    valid_frames = []
    for api_key, version, body in bodies:
        body_cls = load_request_schema(api_key, version)
        header = body_cls.__header_schema__(
            request_api_key=api_key, request_api_version=version, correlation_id=1, client_id="fuzzer"
        )
        valid_frames.append(encode_request(header, build(body_cls, body)))
    rng = random.Random(int(os.environ.get("TIDEPOOL_FUZZ_SEED", "5")))
    for round_ in range(600):
        if round_ % 3 == 0:
            payload = rng.randbytes(rng.randrange(0, 200))
            frame = struct.pack(">i", len(payload)) + payload
        else:
            mutated = bytearray(rng.choice(valid_frames))
            for _ in range(rng.randrange(1, 6)):
                mutated[rng.randrange(4, len(mutated))] = rng.randrange(256)
            frame = bytes(mutated)
        try:
            fuzzer = Client(broker.bootstrap)
            fuzzer.sock.settimeout(2)
            fuzzer.send_raw(frame)
            with contextlib.suppress(ConnectionError, TimeoutError, OSError):
                fuzzer.read_frame()
            fuzzer.close()
        except OSError:
            pass
        assert broker.alive(), broker.log_tail()
    partition = fetch(client, "fuzz", 0)
    headers = iter_headers(partition.records)
    offsets = [(h.base_offset, h.last_offset) for h in headers]
    assert offsets[0] == (0, 3)
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(offsets)), "still contiguous"
    assert partition.high_watermark == offsets[-1][1] + 1
    assert "Traceback" not in broker.log_tail(10000)


def retention_by_bytes_is_done(partition_dir: Path, log_start: int, retention_bytes: int) -> bool:
    """True when the partition's first segment starts at `log_start` and deleting it would leave less than
    `retention_bytes`: then no retention pass can delete anything more (the pass's own stop condition)."""
    try:
        sizes = {int(path.stem): path.stat().st_size for path in partition_dir.glob("*.log")}
    except FileNotFoundError:  # a segment deleted between listing and stat: a pass is running
        return False
    return bool(sizes) and min(sizes) == log_start and sum(sizes.values()) - sizes[log_start] < retention_bytes


def test_producer_state_high_watermark_and_log_start_are_right_after_sigkill(tmp_path: Path) -> None:
    process = BrokerProcess(
        tmp_path / "data",
        free_port(),
        "--segment-bytes",
        "2048",
        "--retention-bytes",
        "2048",
        "--retention-check-interval-ms",
        "100",
        "--fsync-interval-ms",
        "50",
    ).start()
    try:  # SIGKILL in the end, and also when an assertion fails: never leave the broker running
        client = Client(process.bootstrap)
        create_topic(client, "state")
        pid = client.request(
            22, 4, {"transactional_id": None, "transaction_timeout": 60000, "producer_id": -1, "producer_epoch": -1}
        ).producer_id
        sequence = 0
        last = b""
        for _ in range(40):
            last = records(5, pid, 0, sequence)
            assert produce(client, "state", last).error_code == ErrorCode.none
            sequence += 5
        # Wait until retention has nothing left to delete, not just until its first pass: a pass during the produce
        # loop moves the log start, and a later pass before the kill would move it again after `before` was read.
        deadline = time.monotonic() + 30
        before = fetch(client, "state", 199)
        while not retention_by_bytes_is_done(tmp_path / "data" / "state-0", before.log_start_offset, 2048):
            assert time.monotonic() < deadline, (
                f"retention still deleting: {sorted(os.listdir(tmp_path / 'data' / 'state-0'))}"
            )
            time.sleep(0.1)
            before = fetch(client, "state", 199)
        assert before.log_start_offset > 0, "retention by bytes deleted head segments"
        client.close()
    finally:
        process.kill()
    restarted = BrokerProcess(tmp_path / "data", process.port).start()
    try:
        client = Client(restarted.bootstrap)
        after = fetch(client, "state", 199)
        assert (after.high_watermark, after.log_start_offset) == (200, before.log_start_offset)
        retried = produce(client, "state", last)
        assert (retried.error_code, retried.base_offset) == (ErrorCode.none, 195), "duplicate known after restart"
        assert produce(client, "state", records(1, pid, 0, sequence + 1)).error_code == (
            ErrorCode.out_of_order_sequence_number
        )
        assert produce(client, "state", records(1, pid, 0, sequence)).base_offset == 200
        client.close()
    finally:
        restarted.stop()


def test_a_second_broker_on_the_same_data_dir_is_refused(broker: BrokerProcess) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tidepool",
            "broker",
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--data-dir",
            str(broker.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "is in use by another broker process" in result.stderr
    assert broker.alive()


def test_batches_are_stored_and_served_byte_for_byte_but_for_base_offset_and_leader_epoch(client: Client) -> None:
    from aiokafka.record.default_records import DefaultRecordBatchBuilder as AioBatchBuilder

    create_topic(client, "verbatim")
    produce(client, "verbatim", records(2))
    for codec in (1, 2, 3, 4):  # gzip, snappy, lz4, zstd: compressed payloads are never touched
        builder = AioBatchBuilder(2, codec, False, -1, -1, -1, 1 << 20)  # aiokafka's: it has snappy
        for i in range(20):
            builder.append(i, timestamp=1_700_000_000_000 + i, key=b"k", value=b"payload %d" % i, headers=[])
        sent = bytes(builder.build())
        base = produce(client, "verbatim", sent).base_offset
        (stored,) = [h for h in iter_headers(fetch(client, "verbatim", base).records) if h.base_offset == base]
        served = fetch(client, "verbatim", base).records[stored.position : stored.position + stored.size]
        assert struct.unpack_from(">qi", served) == (base, len(sent) - 12)
        assert served[16:] == sent[16:], f"codec {codec}: bytes after the leader epoch are exactly as produced"


def test_acks_zero_gets_no_response_and_a_failure_closes_the_connection(broker: BrokerProcess, client: Client) -> None:
    create_topic(client, "quiet")
    body_cls = load_request_schema(0, 7)

    def acks_zero(topic: str) -> bytes:
        header = body_cls.__header_schema__(
            request_api_key=0, request_api_version=7, correlation_id=99, client_id="fire-and-forget"
        )
        return encode_request(
            header,
            build(
                body_cls,
                {
                    "transactional_id": None,
                    "acks": 0,
                    "timeout": 1000,
                    "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": records(1)}]}],
                },
            ),
        )

    client.send_raw(acks_zero("quiet"))
    assert fetch(client, "quiet", 0).high_watermark == 1, "no response came first; the next one is the fetch"
    other = Client(broker.bootstrap)
    other.send_raw(acks_zero("no-such-topic"))
    other.sock.settimeout(5)
    with pytest.raises(ConnectionError):
        other.read_frame()
    other.close()


def test_hundreds_of_partitions_keep_their_high_watermarks_across_a_restart(tmp_path: Path) -> None:
    from confluent_kafka import Producer

    process = BrokerProcess(tmp_path / "data", free_port()).start()
    client = Client(process.bootstrap)
    create_topic(client, "wide", partitions=300)
    producer = Producer({"bootstrap.servers": process.bootstrap, "linger.ms": 5})
    for i in range(3000):
        producer.produce("wide", value=b"%d" % i, partition=(i * 7) % 300)
    assert producer.flush(30) == 0
    client.close()
    assert process.stop() == 0
    restarted = BrokerProcess(tmp_path / "data", process.port).start()
    try:
        client = Client(restarted.bootstrap)
        response = client.request(
            2,
            7,
            {
                "replica_id": -1,
                "isolation_level": 0,
                "topics": [
                    {
                        "name": "wide",
                        "partitions": [
                            {"partition_index": p, "current_leader_epoch": -1, "timestamp": -1} for p in range(300)
                        ],
                    }
                ],
            },
        )
        assert [p.offset for p in response.topics[0].partitions] == [10] * 300
        client.close()
    finally:
        restarted.stop()


def test_the_group_initial_rebalance_delay_flag_reaches_the_group_coordinator(tmp_path: Path) -> None:
    pytest.importorskip("tidepool.broker.groups.api", reason="the group coordinator is not installed")
    from confluent_kafka import Consumer

    process = BrokerProcess(tmp_path / "data", free_port(), "--group-initial-rebalance-delay-ms", "2500").start()
    try:
        admin = Client(process.bootstrap)
        create_topic(admin, "delayed")
        admin.close()
        consumer = Consumer({"bootstrap.servers": process.bootstrap, "group.id": "patient"})
        try:
            started = time.monotonic()
            consumer.subscribe(["delayed"])
            while not consumer.assignment() and time.monotonic() - started < 20:
                consumer.poll(0.1)
            waited = time.monotonic() - started
            assert consumer.assignment(), "the single member was assigned its partition"
        finally:
            consumer.close()
        assert waited >= 2.4, f"assigned after {waited:.2f} s: the 2500 ms initial delay was not applied"
    finally:
        process.stop()
