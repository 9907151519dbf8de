"""The broker's handlers in-process, with kio request entities: what a failing disk and auto-creation answer."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
from typing import Any

import pytest
from kafka.record.default_records import DefaultRecordBatchBuilder
from kio.index import load_request_schema
from kio.schema.errors import ErrorCode

from tidepool.broker.config import BrokerConfig
from tidepool.broker.handlers import BrokerHandlers
from tidepool.broker.log.manager import LogManager
from tidepool.broker.protocol.codec import build
from tidepool.broker.protocol.records import validate_produced


def records() -> bytes:
    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 20)
    builder.append(0, timestamp=1_700_000_000_000, key=None, value=b"reading", headers=[])
    return bytes(builder.build())


def request(api_key: int, version: int, body: dict[str, Any]) -> Any:
    return build(load_request_schema(api_key, version), body)


def produce_request(topic: str) -> Any:
    return request(
        0,
        9,
        {
            "transactional_id": None,
            "acks": -1,
            "timeout": 1000,
            "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": records()}]}],
        },
    )


@pytest.fixture
def handlers(tmp_path: Path) -> BrokerHandlers:
    config = BrokerConfig(data_dir=tmp_path, auto_create_topics=True, default_partitions=3)
    return BrokerHandlers(config, LogManager(tmp_path, config.log), "cluster")


def test_a_failing_disk_answers_kafka_storage_error_and_acknowledges_nothing(
    handlers: BrokerHandlers, monkeypatch: pytest.MonkeyPatch
) -> None:
    handlers.logs.create_topic("readings", 1)

    def full_disk(fd: int, data: bytes, position: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full_disk)
    response = asyncio.run(handlers.produce(None, produce_request("readings")))
    partition = response.responses[0].partition_responses[0]
    assert partition.error_code == ErrorCode.kafka_storage_error
    assert "No space left on device" in partition.error_message
    monkeypatch.undo()
    log = handlers.logs.get("readings", 0)
    assert log is not None and log.log_end_offset == 0
    retried = asyncio.run(handlers.produce(None, produce_request("readings")))
    assert retried.responses[0].partition_responses[0].base_offset == 0


def test_metadata_auto_creates_only_when_asked_and_allowed(handlers: BrokerHandlers) -> None:
    refused = asyncio.run(
        handlers.metadata(None, request(3, 12, {"topics": [{"name": "quiet"}], "allow_auto_topic_creation": False}))
    )
    assert refused.topics[0].error_code == ErrorCode.unknown_topic_or_partition
    created = asyncio.run(
        handlers.metadata(None, request(3, 12, {"topics": [{"name": "quiet"}], "allow_auto_topic_creation": True}))
    )
    assert created.topics[0].error_code == ErrorCode.none
    assert len(created.topics[0].partitions) == 3
    invalid = asyncio.run(
        handlers.metadata(None, request(3, 12, {"topics": [{"name": "no spaces"}], "allow_auto_topic_creation": True}))
    )
    assert invalid.topics[0].error_code == ErrorCode.invalid_topic_exception
    everything = asyncio.run(handlers.metadata(None, request(3, 0, {"topics": []})))
    assert [t.name for t in everything.topics] == ["quiet"]


def test_produce_with_acks_zero_gets_no_response_but_is_stored(handlers: BrokerHandlers) -> None:
    handlers.logs.create_topic("fire-and-forget", 1)
    body = request(
        0,
        3,
        {
            "transactional_id": None,
            "acks": 0,
            "timeout": 1000,
            "topic_data": [{"name": "fire-and-forget", "partition_data": [{"index": 0, "records": records()}]}],
        },
    )
    assert asyncio.run(handlers.produce(None, body)) is None
    log = handlers.logs.get("fire-and-forget", 0)
    assert log is not None and log.log_end_offset == 1


def test_transactional_producers_are_refused(handlers: BrokerHandlers) -> None:
    response = asyncio.run(
        handlers.init_producer_id(
            None,
            request(
                22,
                4,
                {"transactional_id": "tx-1", "transaction_timeout": 1000, "producer_id": -1, "producer_epoch": -1},
            ),
        )
    )
    assert response.error_code == ErrorCode.invalid_request
    assert response.producer_id == -1


def fetch_request(topic: str, partitions: int, max_bytes: int, partition_max_bytes: int) -> Any:
    return request(
        1,
        12,
        {
            "replica_id": -1,
            "max_wait": 0,
            "min_bytes": 1,
            "max_bytes": max_bytes,
            "isolation_level": 0,
            "session_id": 0,
            "session_epoch": -1,
            "forgotten_topics_data": [],
            "rack_id": "",
            "topics": [
                {
                    "topic": topic,
                    "partitions": [
                        {
                            "partition": p,
                            "fetch_offset": 0,
                            "partition_max_bytes": partition_max_bytes,
                            "log_start_offset": -1,
                            "current_leader_epoch": -1,
                        }
                        for p in range(partitions)
                    ],
                }
            ],
        },
    )


def test_fetch_budget_spans_partitions_and_only_the_first_may_exceed_it(handlers: BrokerHandlers) -> None:
    topic = handlers.logs.create_topic("budget", 3)
    assert topic is not None
    batch = records()
    for log in topic.partitions:
        for _ in range(3):
            log.append(batch, validate_produced(batch, 1 << 20))

    def sizes(max_bytes: int, partition_max_bytes: int) -> list[int]:
        response = asyncio.run(handlers.fetch(None, fetch_request("budget", 3, max_bytes, partition_max_bytes)))
        partitions = response.responses[0].partitions
        assert all(p.error_code == ErrorCode.none and p.high_watermark == 3 for p in partitions)
        return [len(p.records or b"") for p in partitions]

    size = len(batch)
    assert sizes(1, 1) == [size, 0, 0], "one whole batch even past both limits, and nothing more"
    assert sizes(10_000, 2 * size) == [2 * size, 2 * size, 2 * size]
    assert sizes(4 * size, 10_000) == [3 * size, size, 0]


def test_parked_fetches_wake_only_for_their_partitions_and_leave_no_waiters_behind(handlers: BrokerHandlers) -> None:
    handlers.logs.create_topic("watched", 1)
    handlers.logs.create_topic("other", 1)

    def parked_fetch(topic: str, max_wait_ms: int) -> Any:
        return request(
            1,
            12,
            {
                "replica_id": -1,
                "max_wait": max_wait_ms,
                "min_bytes": 1,
                "max_bytes": 1 << 20,
                "isolation_level": 0,
                "session_id": 0,
                "session_epoch": -1,
                "forgotten_topics_data": [],
                "rack_id": "",
                "topics": [
                    {
                        "topic": topic,
                        "partitions": [{"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}],
                    }
                ],
            },
        )

    async def scenario() -> tuple[float, float, int]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        idle = asyncio.create_task(handlers.fetch(None, parked_fetch("watched", 300)))
        await asyncio.sleep(0.05)
        assert set(handlers._waiters) == {("watched", 0)}
        await handlers.produce(None, produce_request("other"))
        idle_response = await idle
        idle_took = loop.time() - started
        assert not idle_response.responses[0].partitions[0].records
        started = loop.time()
        woken = asyncio.create_task(handlers.fetch(None, parked_fetch("watched", 5000)))
        await asyncio.sleep(0.05)
        await handlers.produce(None, produce_request("watched"))
        woken_response = await woken
        return idle_took, loop.time() - started, len(woken_response.responses[0].partitions[0].records)

    idle_took, woken_took, size = asyncio.run(scenario())
    assert idle_took >= 0.29, "an append elsewhere does not answer the parked fetch early"
    assert woken_took < 2 and size > 0, "an append to its partition answers it at once"
    assert handlers._waiters == {}
