"""`tidepool simulate`: produce sensor readings to a Kafka topic at a steady rate (tidepool's broker or Apache Kafka).

Delivery is acks=all with librdkafka's retries; the run reports how many messages the broker acknowledged, which is
the number a pipeline test expects to find in the database.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType

from tidepool.errors import TidepoolError
from tidepool.logs import get_logger
from tidepool.pipeline.sensors import SensorFleet

log = get_logger("simulate")


@dataclass
class SimulateOptions:
    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "oceanic"
    sensors: int = 10
    rate: float = 10.0  # messages per second, all sensors together; 0 = as fast as possible
    count: int | None = None
    duration: float | None = None
    station_tag: bool = False
    event_time: bool = False
    progress: bool = True
    seed: int | None = None


@dataclass
class SimulateResult:
    sent: int
    acknowledged: int
    failed: int
    seconds: float


def run(options: SimulateOptions) -> SimulateResult:
    """Produce until count or duration is reached (or forever); returns what the broker acknowledged."""
    from confluent_kafka import KafkaError, KafkaException, Producer

    fleet = SensorFleet(
        options.sensors, station_tag=options.station_tag, event_time=options.event_time, seed=options.seed
    )
    producer = Producer(
        {
            "bootstrap.servers": options.bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 120_000,
            "client.id": "tidepool-simulate",
        }
    )
    state = {"acked": 0, "failed": 0}
    first_error: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        if err is None:
            state["acked"] += 1
        else:
            state["failed"] += 1
            if not first_error:
                first_error.append(str(err))

    progress = _Progress(options) if options.progress else None
    _stop_on_sigterm()
    start = time.monotonic()
    deadline = start + options.duration if options.duration else None
    sent = 0
    try:
        while options.count is None or sent < options.count:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if options.rate > 0:
                due = start + sent / options.rate
                if due > now:
                    producer.poll(min(due - now, 0.1))
                    continue
            value, key = fleet.message()
            try:
                producer.produce(options.topic, value, key, on_delivery=on_delivery)
            except BufferError:
                producer.poll(0.05)
                continue
            except KafkaException as exc:
                raise TidepoolError(f"cannot produce to {options.topic!r}: {exc}") from None
            sent += 1
            producer.poll(0)
            if progress is not None:
                progress.update(sent, state["acked"], time.monotonic() - start)
    except KeyboardInterrupt:
        log.info("interrupted; flushing what was sent")
    remaining = producer.flush(30)
    elapsed = time.monotonic() - start
    if progress is not None:
        progress.close(sent, state["acked"], elapsed)
    if remaining:
        state["failed"] += remaining
    if first_error:
        log.warning("%d message(s) not delivered; first error: %s", state["failed"], first_error[0])
    return SimulateResult(sent, state["acked"], state["failed"], elapsed)


def _stop_on_sigterm() -> None:
    """SIGTERM (from `tidepool up` or a service manager) ends the run like Ctrl-C: flush, then report."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


class _Progress:
    """One status line, redrawn at most 4 times a second: sent, acknowledged, achieved rate."""

    def __init__(self, options: SimulateOptions) -> None:
        self.total = options.count
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def update(self, sent: int, acked: int, elapsed: float) -> None:
        if elapsed - self.last < (0.25 if self.tty else 5.0):
            return
        self.last = elapsed
        self._draw(sent, acked, elapsed, final=False)

    def close(self, sent: int, acked: int, elapsed: float) -> None:
        self._draw(sent, acked, elapsed, final=True)

    def _draw(self, sent: int, acked: int, elapsed: float, final: bool) -> None:
        rate = sent / elapsed if elapsed > 0 else 0.0
        of = f"/{self.total}" if self.total else ""
        line = f"sent {sent}{of}  acknowledged {acked}  {rate:,.0f} msg/s  {elapsed:.1f}s"
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + line + ("\n" if final else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
