"""Broker throughput: produce then consume N messages with confluent-kafka, print msg/s, MB/s and peak RSS.

Starts its own `tidepool broker` in a temporary directory unless --bootstrap-server points at a running broker
(tidepool, Apache Kafka or tansu — the peer comparison passes each one's address).

    .venv/bin/python bench/broker.py --messages 200000 --size 100
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def produce(bootstrap: str, topic: str, count: int, size: int, codec: str) -> float:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "compression.type": codec,
            "acks": "all",
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    payload = os.urandom(size // 2).hex().encode()[:size]
    failures = 0

    def delivered(err: object, _msg: object) -> None:
        nonlocal failures
        failures += err is not None

    started = time.perf_counter()
    for _ in range(count):
        while True:
            try:
                producer.produce(topic, payload, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.01)
    remaining = producer.flush(120)
    elapsed = time.perf_counter() - started
    if remaining or failures:
        raise SystemExit(f"{remaining} undelivered, {failures} failed")
    return elapsed


def consume(bootstrap: str, topic: str, count: int) -> float:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench",
            "enable.auto.commit": False,
            "fetch.max.bytes": 52428800,
            "max.partition.fetch.bytes": 10485760,
        }
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got = 0
    started = time.perf_counter()
    deadline = started + 300
    while got < count and time.perf_counter() < deadline:
        got += sum(1 for m in consumer.consume(min(100_000, count - got), 1.0) if m.error() is None)
    elapsed = time.perf_counter() - started
    consumer.close()
    if got < count:
        raise SystemExit(f"consumed only {got} of {count}")
    return elapsed


def produce_kcat(bootstrap: str, topic: str, count: int, size: int, codec: str) -> float:
    payload = os.urandom(size // 2).hex()[:size]
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as lines:
        for _ in range(count):
            lines.write(payload + "\n")
        lines.flush()
        started = time.perf_counter()
        subprocess.run(
            ["kcat", "-P", "-l", "-b", bootstrap, "-t", topic, "-z", codec, "-X", "linger.ms=5", lines.name],
            check=True,
            timeout=300,
        )
        return time.perf_counter() - started


def consume_kcat(bootstrap: str, topic: str, count: int) -> float:
    started = time.perf_counter()
    out = subprocess.run(
        ["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", "-c", str(count), "-f", "%o\n"],
        check=True,
        timeout=300,
        capture_output=True,
    ).stdout
    elapsed = time.perf_counter() - started
    got = out.count(b"\n")
    if got < count:
        raise SystemExit(f"kcat consumed only {got} of {count}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=100, help="bytes per message value")
    parser.add_argument("--codec", default="none", choices=["none", "gzip", "snappy", "lz4", "zstd"])
    parser.add_argument("--bootstrap-server", default=None, help="use this running broker instead of starting one")
    parser.add_argument("--label", default=None, help="name of the broker in the table")
    parser.add_argument("--broker-pid", type=int, default=None, help="pid of an external broker, for its peak RSS")
    parser.add_argument("--client", default="confluent", choices=["confluent", "kcat"], help="who produces/consumes")
    args = parser.parse_args()

    broker = None
    tmp = None
    bootstrap = args.bootstrap_server
    if bootstrap is None:
        from tidepool.broker.process import BrokerProcess

        tmp = tempfile.TemporaryDirectory(prefix="tidepool-bench-")
        broker = BrokerProcess(Path(tmp.name) / "data", free_port()).start()
        bootstrap = broker.bootstrap
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        produce(bootstrap, topic, 1, args.size, args.codec)  # creates the topic, warms up
        if args.client == "kcat":
            produce_s = produce_kcat(bootstrap, topic, args.messages, args.size, args.codec)
            consume_s = consume_kcat(bootstrap, topic, args.messages + 1)
        else:
            produce_s = produce(bootstrap, topic, args.messages, args.size, args.codec)
            consume_s = consume(bootstrap, topic, args.messages + 1)
        pid = broker.proc.pid if broker and broker.proc else args.broker_pid
        rss = peak_rss_mb(pid) if pid is not None else None
    finally:
        if broker is not None:
            broker.stop()
        if tmp is not None:
            tmp.cleanup()
    megabytes = args.messages * args.size / 1e6
    label = args.label or ("tidepool" if broker else bootstrap)
    print(
        f"{'broker':<12} {'client':<9} {'direction':<9} {'messages':>9} {'size':>5} {'codec':<6} {'seconds':>8} "
        f"{'msg/s':>10} {'MB/s':>8} {'peak RSS MB':>11}"
    )
    for direction, seconds in (("produce", produce_s), ("consume", consume_s)):
        print(
            f"{label:<12} {args.client:<9} {direction:<9} {args.messages:>9} {args.size:>5} {args.codec:<6} "
            f"{seconds:>8.2f} {args.messages / seconds:>10.0f} {megabytes / seconds:>8.1f} "
            f"{rss if rss is not None else float('nan'):>11.1f}"
        )


if __name__ == "__main__":
    main()
