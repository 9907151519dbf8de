"""`tidepool up` end to end: messages in, rows out, exactly; crashes of any part lose nothing acknowledged."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import orjson
import pytest

from tests.e2e.pipeline import Pipeline, new_pipeline

pytestmark = pytest.mark.slow


class Producer:
    """Sends readings with known values (acks=all, idempotent) and remembers what the broker acknowledged."""

    def __init__(self, brokers: str, stations: int = 5) -> None:
        from confluent_kafka import Producer as KafkaProducer

        self.producer = KafkaProducer(
            {"bootstrap.servers": brokers, "acks": "all", "enable.idempotence": True, "linger.ms": 2,
             "message.timeout.ms": 120000}
        )  # fmt: skip
        self.stations = stations
        self.sent = 0
        self.acked: list[dict[str, object]] = []
        self.failed = 0
        self.base_time = time.time_ns()

    def _on_delivery(self, err: object, msg: object) -> None:
        if err is None:
            self.acked.append(orjson.loads(msg.value()))  # type: ignore[attr-defined]
        else:
            self.failed += 1

    def send(self, count: int, rate: float = 0.0) -> None:
        start = time.monotonic()
        for _ in range(count):
            i = self.sent
            doc = {"station_id": f"s{i % self.stations}", "pressure": float(i % 10), "temperature": i * 0.5,
                   "visibility": 1.0, "time": self.base_time + i * 1000}  # fmt: skip
            while True:
                try:
                    self.producer.produce("oceanic", orjson.dumps(doc), on_delivery=self._on_delivery)
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.sent += 1
            self.producer.poll(0)
            if rate:
                delay = start + self.sent / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    def flush(self) -> None:
        assert self.producer.flush(120) == 0


def _no_duplicate_rows(pipeline: Pipeline) -> None:
    dupes = pipeline.sql(
        "SELECT station_id, time, count(*) AS n FROM kafka_consumer GROUP BY station_id, time HAVING count(*) > 1"
    )
    assert dupes.strip().splitlines()[1:] == []


def test_up_delivers_exactly_the_messages_sent_with_their_values(tmp_path: Path) -> None:
    pipeline = new_pipeline(tmp_path)
    pipeline.start()
    try:
        producer = Producer(pipeline.brokers)
        producer.send(3000)
        producer.flush()
        assert len(producer.acked) == 3000
        assert pipeline.wait_count(3000, timeout=90) == 3000
        time.sleep(1.0)
        assert pipeline.count() == 3000
        totals = pipeline.sql("SELECT sum(pressure), sum(temperature), count(DISTINCT station_id) FROM kafka_consumer")
        sums = totals.strip().splitlines()[-1].split(",")
        assert float(sums[0]) == sum(float(i % 10) for i in range(3000))
        assert float(sums[1]) == pytest.approx(sum(i * 0.5 for i in range(3000)))
        assert int(sums[2]) == 5
        _no_duplicate_rows(pipeline)
    finally:
        assert pipeline.stop() == 0


@pytest.mark.parametrize("victims", [("broker",), ("agent",), ("db",), ("everything",)])
def test_crash_under_a_steady_stream_loses_nothing_acknowledged(tmp_path: Path, victims: tuple[str, ...]) -> None:
    pipeline = new_pipeline(tmp_path)
    pipeline.start()
    producer = Producer(pipeline.brokers)
    try:
        stream = threading.Thread(target=producer.send, args=(4000, 1000.0))
        stream.start()
        time.sleep(1.5)
        if victims == ("everything",):
            pipeline.kill_everything()
            time.sleep(0.5)
            pipeline.start()
        else:
            for part in victims:
                pipeline.kill(part)
        stream.join(120)
        producer.flush()
        acked = len(producer.acked)
        assert acked + producer.failed == 4000
        assert acked > 0
        final = pipeline.wait_count(acked, timeout=120)
        time.sleep(1.0)
        assert pipeline.count() == acked == final
        _no_duplicate_rows(pipeline)
    finally:
        pipeline.stop()
