"""Broker settings: what `tidepool broker` flags set, with Apache Kafka's defaults unless noted."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tidepool.broker.log.partition import LogConfig

FSYNC_POLICIES = ("always", "interval", "never")


@dataclass(frozen=True)
class BrokerConfig:
    data_dir: Path = Path("./tidepool-data/broker")
    host: str = "127.0.0.1"
    port: int = 9092
    advertised_host: str | None = None
    advertised_port: int | None = None
    node_id: int = 1
    default_partitions: int = 1
    auto_create_topics: bool = True
    log: LogConfig = field(default_factory=LogConfig)
    # tidepool's default: fsync once a second. A killed broker process loses nothing acknowledged (the bytes are
    # in the OS page cache); a power loss may lose up to the last second. "always" fsyncs before every ack.
    fsync: str = "interval"
    fsync_interval_ms: int = 1000
    retention_check_interval_ms: int = 300_000
    max_request_bytes: int = 104_857_600  # socket.request.max.bytes
    fetch_max_bytes: int = 57_671_680  # fetch.max.bytes
    connections_max_idle_ms: int = 600_000  # connections.max.idle.ms
    # handed to the group coordinator through BrokerContext; None leaves its own default (or environment)
    group_initial_rebalance_delay_ms: int | None = None

    @property
    def public_host(self) -> str:
        if self.advertised_host:
            return self.advertised_host
        return "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host

    @property
    def public_port(self) -> int:
        return self.advertised_port if self.advertised_port is not None else self.port
