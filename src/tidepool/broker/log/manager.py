"""All partition logs under one data directory, the topic catalog and the producer id allocator.

Layout: `<data_dir>/<topic>-<partition>/` per partition (as Apache Kafka), `<data_dir>/topics.json` (topic id,
partition count and config overrides per topic), `<data_dir>/producer-ids` (next free producer id block) and
`<data_dir>/.kafka_cleanshutdown` while the broker is stopped cleanly.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tidepool.broker.log.partition import LogConfig, PartitionLog, read_number, write_atomically, write_number

CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
LOCK_FILE = ".lock"
CATALOG_FILE = "topics.json"
PRODUCER_IDS_FILE = "producer-ids"
PRODUCER_ID_BLOCK = 1000

# topic-level config names the broker applies (Apache Kafka's names) → LogConfig attribute
TOPIC_CONFIGS = {
    "segment.bytes": "segment_bytes",
    "segment.ms": "roll_ms",
    "retention.ms": "retention_ms",
    "retention.bytes": "retention_bytes",
    "max.message.bytes": "max_message_bytes",
}
# topic configs accepted only at the one value that matches what the broker does
FIXED_TOPIC_CONFIGS = {
    "cleanup.policy": "delete",
    "compression.type": "producer",
    "message.timestamp.type": "CreateTime",
    "min.insync.replicas": "1",
}


@dataclass
class Topic:
    name: str
    topic_id: uuid.UUID
    partitions: list[PartitionLog]
    configs: dict[str, str] = field(default_factory=dict)


class TopicError(Exception):
    """A topic admin request the broker refuses; `error_code` is the Kafka error."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_TOPIC_EXCEPTION = 17
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_CONFIG = 40
_LEGAL = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def validate_topic_name(name: str) -> None:
    if not name or name in (".", "..") or len(name) > 249 or not set(name) <= _LEGAL:
        raise TopicError(INVALID_TOPIC_EXCEPTION, f"invalid topic name {name!r}: use [a-zA-Z0-9._-], 1..249 chars")


class DataDirLocked(Exception):
    """Another broker process holds this data directory."""


class LogManager:
    def __init__(self, data_dir: Path, defaults: LogConfig, log: Callable[[str], None] = lambda _: None) -> None:
        self.data_dir = data_dir
        self.defaults = defaults
        self._log = log
        data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(data_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held for the broker's lifetime
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise DataDirLocked(f"{data_dir} is in use by another broker process") from None
        marker = data_dir / CLEAN_SHUTDOWN_FILE
        self.clean_shutdown = marker.exists()
        self.topics: dict[str, Topic] = {}
        self._load_catalog()
        marker.unlink(missing_ok=True)
        self._next_producer_id = read_number(self.data_dir / PRODUCER_IDS_FILE, default=1000)
        self._producer_id_limit = 0

    def _load_catalog(self) -> None:
        try:
            catalog: dict[str, Any] = json.loads((self.data_dir / CATALOG_FILE).read_text())
        except FileNotFoundError:
            catalog = {}
        for name, entry in catalog.items():
            configs = {str(k): str(v) for k, v in entry.get("configs", {}).items()}
            config = self.config_for(configs)
            partitions = []
            for p in range(int(entry["partitions"])):
                log = PartitionLog(self.data_dir / f"{name}-{p}", config, self.clean_shutdown)
                if log.truncated_bytes:
                    self._log(f"recovered {name}-{p}: truncated a torn tail of {log.truncated_bytes} bytes")
                partitions.append(log)
            self.topics[name] = Topic(name, uuid.UUID(entry["id"]), partitions, configs)

    def _save_catalog(self) -> None:
        catalog = {
            t.name: {"id": str(t.topic_id), "partitions": len(t.partitions), "configs": t.configs}
            for t in self.topics.values()
        }
        write_atomically(self.data_dir / CATALOG_FILE, json.dumps(catalog, indent=1, sort_keys=True))

    def config_for(self, overrides: dict[str, str]) -> LogConfig:
        config = self.defaults
        for key, value in overrides.items():
            if key in FIXED_TOPIC_CONFIGS:
                if value != FIXED_TOPIC_CONFIGS[key]:
                    raise TopicError(INVALID_CONFIG, f"{key}={value} is not supported, only {FIXED_TOPIC_CONFIGS[key]}")
                continue
            attribute = TOPIC_CONFIGS.get(key)
            if attribute is None:
                raise TopicError(INVALID_CONFIG, f"unsupported topic config {key!r}")
            try:
                config = replace(config, **{attribute: int(value)})
            except ValueError:
                raise TopicError(INVALID_CONFIG, f"topic config {key}={value!r} is not an integer") from None
        return config

    # ---- topics -----------------------------------------------------------------------------------------------

    def get(self, topic: str, partition: int) -> PartitionLog | None:
        entry = self.topics.get(topic)
        if entry is None or not 0 <= partition < len(entry.partitions):
            return None
        return entry.partitions[partition]

    def create_topic(
        self, name: str, partitions: int, configs: dict[str, str] | None = None, validate_only: bool = False
    ) -> Topic | None:
        validate_topic_name(name)
        if name in self.topics:
            raise TopicError(TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        if partitions < 1:
            raise TopicError(INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
        configs = configs or {}
        config = self.config_for(configs)
        if validate_only:
            return None
        for p in range(partitions):
            stale = self.data_dir / f"{name}-{p}"
            if stale.exists():
                shutil.rmtree(stale)
        logs = [PartitionLog(self.data_dir / f"{name}-{p}", config, True) for p in range(partitions)]
        topic = Topic(name, uuid.uuid4(), logs, dict(configs))
        self.topics[name] = topic
        self._save_catalog()
        self._log(f"created topic {name} with {partitions} partition(s)")
        return topic

    def add_partitions(self, name: str, total: int, validate_only: bool = False) -> None:
        topic = self.topics.get(name)
        if topic is None:
            raise TopicError(UNKNOWN_TOPIC_OR_PARTITION, f"Topic '{name}' does not exist.")
        current = len(topic.partitions)
        if total <= current:
            raise TopicError(
                INVALID_PARTITIONS, f"Topic currently has {current} partitions, {total} would not be an increase."
            )
        if validate_only:
            return
        config = self.config_for(topic.configs)
        for p in range(current, total):
            topic.partitions.append(PartitionLog(self.data_dir / f"{name}-{p}", config, True))
        self._save_catalog()
        self._log(f"topic {name} now has {total} partitions")

    def set_topic_configs(self, name: str, configs: dict[str, str], validate_only: bool = False) -> None:
        """Replace a topic's config overrides; the partitions apply them from their next append or retention."""
        topic = self.topics.get(name)
        if topic is None:
            raise TopicError(UNKNOWN_TOPIC_OR_PARTITION, f"Topic '{name}' does not exist.")
        config = self.config_for(configs)
        if validate_only:
            return
        topic.configs = dict(configs)
        for partition_log in topic.partitions:
            partition_log.config = config
        self._save_catalog()
        self._log(f"topic {name} configs now {configs or 'the defaults'}")

    def delete_topic(self, name: str) -> None:
        topic = self.topics.pop(name, None)
        if topic is None:
            raise TopicError(UNKNOWN_TOPIC_OR_PARTITION, f"Topic '{name}' does not exist.")
        self._save_catalog()
        for p, log in enumerate(topic.partitions):
            log.close()
            shutil.rmtree(self.data_dir / f"{name}-{p}", ignore_errors=True)
        self._log(f"deleted topic {name}")

    # ---- producer ids -----------------------------------------------------------------------------------------

    def allocate_producer_id(self) -> int:
        """A producer id never handed out before by this data directory (blocks are persisted before use)."""
        if self._next_producer_id >= self._producer_id_limit:
            self._producer_id_limit = self._next_producer_id + PRODUCER_ID_BLOCK
            write_number(self.data_dir / PRODUCER_IDS_FILE, self._producer_id_limit)
        pid = self._next_producer_id
        self._next_producer_id += 1
        return pid

    # ---- maintenance ------------------------------------------------------------------------------------------

    def all_logs(self) -> list[tuple[str, int, PartitionLog]]:
        return [(t.name, p, log) for t in self.topics.values() for p, log in enumerate(t.partitions)]

    def apply_retention(self) -> None:
        for name, p, log in self.all_logs():
            deleted = log.apply_retention()
            if deleted:
                self._log(f"retention deleted {deleted} segment(s) of {name}-{p}; log start {log.log_start_offset}")

    def close(self) -> None:
        for _, _, log in self.all_logs():
            log.close()
        (self.data_dir / CLEAN_SHUTDOWN_FILE).touch()
        self._lock.close()
