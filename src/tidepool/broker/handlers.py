"""Handlers of the broker's own APIs: produce, fetch, offsets, metadata, topic admin, InitProducerId.

Each handler reads a kio request entity of any advertised version and describes its response once as a nested
dict; `codec.build` turns that into the entity of the request's version.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kio.index import load_response_schema
from kio.schema.errors import ErrorCode

from tidepool.broker.config import BrokerConfig
from tidepool.broker.log.manager import LogManager, TopicError
from tidepool.broker.log.partition import OffsetOutOfRange, PartitionLog
from tidepool.broker.protocol.codec import api_versions_response, build
from tidepool.broker.protocol.records import InvalidRecords, validate_produced
from tidepool.logs import get_logger

log = get_logger("broker")

PRODUCE, FETCH, LIST_OFFSETS, METADATA = 0, 1, 2, 3
API_VERSIONS, CREATE_TOPICS, DELETE_TOPICS, DELETE_RECORDS, INIT_PRODUCER_ID = 18, 19, 20, 21, 22
DESCRIBE_CONFIGS, ALTER_CONFIGS, CREATE_PARTITIONS, INCREMENTAL_ALTER_CONFIGS, DESCRIBE_CLUSTER = 32, 33, 37, 44, 60
SET, DELETE = 0, 1  # IncrementalAlterConfigs operations (APPEND and SUBTRACT apply to list configs only)

EARLIEST, LATEST, MAX_TIMESTAMP = -2, -1, -3
TOPIC_RESOURCE, BROKER_RESOURCE = 2, 4
CONFIG_SOURCE_TOPIC, CONFIG_SOURCE_STATIC_BROKER, CONFIG_SOURCE_DEFAULT = 1, 4, 5
# DescribeConfigs v3+ config types, as Kafka's ConfigDef: 1 BOOLEAN, 2 STRING, 3 INT, 5 LONG, 7 LIST
CONFIG_TYPES = {
    "auto.create.topics.enable": 1,
    "broker.id": 3,
    "cleanup.policy": 7,
    "compression.type": 2,
    "log.retention.bytes": 5,
    "log.retention.ms": 5,
    "log.roll.ms": 5,
    "log.segment.bytes": 3,
    "max.message.bytes": 3,
    "message.max.bytes": 3,
    "message.timestamp.type": 2,
    "min.insync.replicas": 3,
    "node.id": 3,
    "num.partitions": 3,
    "retention.bytes": 5,
    "retention.ms": 5,
    "segment.bytes": 3,
    "segment.ms": 5,
    "socket.request.max.bytes": 3,
}


class CloseConnection(Exception):
    """Raised by a handler to close the client's connection instead of answering (not a server fault)."""


def _response(request: Any, api_key: int, data: dict[str, Any]) -> Any:
    return build(load_response_schema(api_key, type(request).__version__), data)


def _version(request: Any) -> int:
    return int(type(request).__version__)


class BrokerHandlers:
    def __init__(self, config: BrokerConfig, logs: LogManager, cluster_id: str) -> None:
        self.config = config
        self.logs = logs
        self.cluster_id = cluster_id
        self.ranges: dict[int, tuple[int, int]] = {}
        # parked Fetches by the partitions they wait on, woken by an append to any of them (Kafka's purgatory)
        self._waiters: dict[tuple[str, int], set[asyncio.Future[None]]] = {}
        self._producer_epochs: dict[int, int] = {}

    def table(self) -> dict[int, tuple[int, int, Any]]:
        return {
            PRODUCE: (3, 9, self.produce),
            FETCH: (4, 12, self.fetch),
            LIST_OFFSETS: (1, 7, self.list_offsets),
            METADATA: (0, 12, self.metadata),
            API_VERSIONS: (0, 4, self.api_versions),
            CREATE_TOPICS: (2, 7, self.create_topics),
            DELETE_TOPICS: (1, 6, self.delete_topics),
            DELETE_RECORDS: (0, 2, self.delete_records),
            INIT_PRODUCER_ID: (0, 4, self.init_producer_id),
            DESCRIBE_CONFIGS: (1, 4, self.describe_configs),
            ALTER_CONFIGS: (0, 2, self.alter_configs),
            INCREMENTAL_ALTER_CONFIGS: (0, 1, self.incremental_alter_configs),
            CREATE_PARTITIONS: (0, 3, self.create_partitions),
            DESCRIBE_CLUSTER: (0, 1, self.describe_cluster),
        }

    # ---- ApiVersions ----------------------------------------------------------------------------------------

    async def api_versions(self, header: Any, request: Any) -> Any:
        return api_versions_response(_version(request), self.ranges)

    # ---- Metadata -------------------------------------------------------------------------------------------

    def _broker(self) -> dict[str, Any]:
        return {
            "node_id": self.config.node_id,
            "broker_id": self.config.node_id,
            "host": self.config.public_host,
            "port": self.config.public_port,
            "rack": None,
        }

    def _topic_metadata(self, name: str) -> dict[str, Any]:
        topic = self.logs.topics[name]
        node = self.config.node_id
        partitions = [
            {
                "error_code": 0,
                "partition_index": p,
                "leader_id": node,
                "leader_epoch": 0,
                "replica_nodes": [node],
                "isr_nodes": [node],
                "offline_replicas": [],
            }
            for p in range(len(topic.partitions))
        ]
        return {
            "error_code": 0,
            "name": name,
            "topic_id": topic.topic_id,
            "is_internal": False,
            "partitions": partitions,
            "topic_authorized_operations": -2147483648,
        }

    async def metadata(self, header: Any, request: Any) -> Any:
        version = _version(request)
        requested = request.topics
        if requested is None or (version == 0 and not requested):
            names = sorted(self.logs.topics)
            auto_create = False
        else:
            names = [t.name for t in requested]
            auto_create = self.config.auto_create_topics and getattr(request, "allow_auto_topic_creation", True)
        topics = []
        for name in names:
            if name is None:
                topics.append({"error_code": ErrorCode.unknown_topic_id, "name": None, "partitions": []})
                continue
            if name not in self.logs.topics and auto_create:
                try:
                    self.logs.create_topic(name, self.config.default_partitions)
                except TopicError as exc:
                    topics.append({"error_code": exc.error_code, "name": name, "partitions": []})
                    continue
            if name in self.logs.topics:
                topics.append(self._topic_metadata(name))
            else:
                topics.append({"error_code": ErrorCode.unknown_topic_or_partition, "name": name, "partitions": []})
        return _response(
            request,
            METADATA,
            {
                "brokers": [self._broker()],
                "cluster_id": self.cluster_id,
                "controller_id": self.config.node_id,
                "topics": topics,
                "cluster_authorized_operations": -2147483648,
            },
        )

    # ---- Produce --------------------------------------------------------------------------------------------

    async def produce(self, header: Any, request: Any) -> Any:
        acks = request.acks
        touched: list[PartitionLog] = []
        keys: list[tuple[str, int]] = []
        responses = []
        for topic_data in request.topic_data:
            partitions = []
            for partition_data in topic_data.partition_data:
                entry, appended_to = self._append(topic_data.name, partition_data.index, partition_data.records, acks)
                partitions.append(entry)
                if appended_to is not None:
                    touched.append(appended_to)
                    keys.append((topic_data.name, partition_data.index))
            responses.append({"name": topic_data.name, "partition_responses": partitions})
        if touched:
            self._wake_fetchers(keys)
            if self.config.fsync == "always" and acks != 0:
                await asyncio.to_thread(_sync_all, touched)
        if acks == 0:
            failed = [p for t in responses for p in t["partition_responses"] if p["error_code"]]
            if failed:
                # Kafka's way of telling an acks=0 producer: it closes the connection, so the client refreshes
                raise CloseConnection(f"acks=0 produce failed with error {int(failed[0]['error_code'])}")
            return None
        return _response(request, PRODUCE, {"responses": responses})

    def _wake_fetchers(self, keys: list[tuple[str, int]] | None = None) -> None:
        """Wake the Fetches parked on these partitions (None: all of them) so they look again."""
        for key in list(self._waiters) if keys is None else keys:
            for woken in self._waiters.pop(key, ()):
                if not woken.done():
                    woken.set_result(None)

    def _append(
        self, topic: str, partition: int, records: bytes | None, acks: int
    ) -> tuple[dict[str, Any], PartitionLog | None]:
        """The partition's produce response entry, and its log if something was appended to it."""

        def failure(code: int, message: str | None = None) -> tuple[dict[str, Any], None]:
            return {
                "index": partition,
                "error_code": code,
                "base_offset": -1,
                "log_append_time": -1,
                "log_start_offset": -1,
                "record_errors": [],
                "error_message": message,
            }, None

        if acks not in (-1, 0, 1):
            return failure(ErrorCode.invalid_required_acks)
        partition_log = self.logs.get(topic, partition)
        if partition_log is None:
            return failure(ErrorCode.unknown_topic_or_partition)
        if not records:
            return failure(ErrorCode.corrupt_message, "no records")
        try:
            headers = validate_produced(bytes(records), partition_log.config.max_message_bytes)
        except InvalidRecords as exc:
            log.warning("refused records for %s-%d: %s", topic, partition, exc.message)
            return failure(exc.error_code, exc.message)
        if any(h.is_transactional or h.is_control for h in headers):
            return failure(ErrorCode.invalid_record, "transactional and control batches are not supported")
        try:
            result = partition_log.append(bytes(records), headers)
        except OSError as exc:  # disk full, I/O error: nothing was acknowledged, the client may retry
            log.error("append to %s-%d failed: %s", topic, partition, exc)
            return failure(ErrorCode.kafka_storage_error, f"append failed: {exc.strerror or exc}")
        if result.error_code:
            return failure(result.error_code, result.message)
        entry = {
            "index": partition,
            "error_code": 0,
            "base_offset": result.base_offset,
            "log_append_time": -1,
            "log_start_offset": partition_log.log_start_offset,
            "record_errors": [],
            "error_message": None,
        }
        return entry, partition_log

    # ---- Fetch ----------------------------------------------------------------------------------------------

    async def fetch(self, header: Any, request: Any) -> Any:
        max_wait = request.max_wait.total_seconds()
        deadline = time.monotonic() + max(0.0, max_wait)
        keys = [(topic.topic, p.partition) for topic in request.topics for p in topic.partitions]
        while True:
            responses, total, errors = self._read_fetch(request)
            remaining = deadline - time.monotonic()
            if total >= request.min_bytes or errors or remaining <= 0:
                break
            woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            for key in keys:
                self._waiters.setdefault(key, set()).add(woken)
            try:
                await asyncio.wait_for(woken, remaining)
            except TimeoutError:
                responses, total, errors = self._read_fetch(request)
                break
            finally:
                for key in keys:
                    waiting = self._waiters.get(key)
                    if waiting is not None:
                        waiting.discard(woken)
                        if not waiting:
                            del self._waiters[key]
        return _response(request, FETCH, {"error_code": 0, "session_id": 0, "responses": responses})

    def _read_fetch(self, request: Any) -> tuple[list[dict[str, Any]], int, bool]:
        budget = min(request.max_bytes, self.config.fetch_max_bytes)
        total = 0
        errors = False
        responses = []
        for topic in request.topics:
            partitions = []
            for p in topic.partitions:
                partition_log = self.logs.get(topic.topic, p.partition)
                entry: dict[str, Any] = {
                    "partition_index": p.partition,
                    "error_code": 0,
                    "high_watermark": -1,
                    "last_stable_offset": -1,
                    "log_start_offset": -1,
                    "aborted_transactions": [],
                    "preferred_read_replica": -1,
                    "records": b"",
                }
                if partition_log is None:
                    entry["error_code"] = ErrorCode.unknown_topic_or_partition
                    errors = True
                else:
                    entry["high_watermark"] = entry["last_stable_offset"] = partition_log.log_end_offset
                    entry["log_start_offset"] = partition_log.log_start_offset
                    limit = min(p.partition_max_bytes, budget - total)
                    if limit > 0 or total == 0:
                        try:
                            data = partition_log.read(p.fetch_offset, max(limit, 1))
                            entry["records"] = data
                            total += len(data)
                        except OffsetOutOfRange:
                            entry["error_code"] = ErrorCode.offset_out_of_range
                            errors = True
                partitions.append(entry)
            responses.append({"topic": topic.topic, "partitions": partitions})
        return responses, total, errors

    # ---- ListOffsets ----------------------------------------------------------------------------------------

    async def list_offsets(self, header: Any, request: Any) -> Any:
        topics = []
        for topic in request.topics:
            partitions = []
            for p in topic.partitions:
                entry: dict[str, Any] = {
                    "partition_index": p.partition_index,
                    "error_code": 0,
                    "timestamp": -1,
                    "offset": -1,
                    "leader_epoch": 0,
                }
                partition_log = self.logs.get(topic.name, p.partition_index)
                if partition_log is None:
                    entry["error_code"] = ErrorCode.unknown_topic_or_partition
                elif p.timestamp == EARLIEST:
                    entry["offset"] = partition_log.log_start_offset
                elif p.timestamp == LATEST:
                    entry["offset"] = partition_log.log_end_offset
                elif p.timestamp == MAX_TIMESTAMP:
                    found = partition_log.max_timestamp_record()
                    if found is not None:
                        entry["offset"], entry["timestamp"] = found
                elif p.timestamp < 0:
                    entry["error_code"] = ErrorCode.unsupported_version
                else:
                    found = partition_log.offset_for_timestamp(p.timestamp)
                    if found is not None:
                        entry["offset"], entry["timestamp"] = found
                partitions.append(entry)
            topics.append({"name": topic.name, "partitions": partitions})
        return _response(request, LIST_OFFSETS, {"topics": topics})

    # ---- topic admin ----------------------------------------------------------------------------------------

    async def create_topics(self, header: Any, request: Any) -> Any:
        results = []
        for topic in request.topics:
            partitions = topic.num_partitions
            if topic.assignments:
                partitions = len(topic.assignments)
            if partitions == -1:
                partitions = self.config.default_partitions
            replication = topic.replication_factor
            configs = {c.name: c.value for c in topic.configs if c.value is not None}
            result: dict[str, Any] = {
                "name": topic.name,
                "error_code": 0,
                "error_message": None,
                "num_partitions": partitions,
                "replication_factor": 1,
                "configs": [],
            }
            try:
                if replication not in (-1, 1) and not topic.assignments:
                    raise TopicError(
                        ErrorCode.invalid_replication_factor,
                        f"Unable to replicate the partition {replication} time(s): The target replication factor "
                        f"of {replication} cannot be reached because only 1 broker(s) are registered.",
                    )
                if any(list(a.broker_ids) != [self.config.node_id] for a in topic.assignments):
                    raise TopicError(ErrorCode.invalid_replica_assignment, "replicas must be [this broker] only")
                created = self.logs.create_topic(topic.name, partitions, configs, request.validate_only)
                if created is not None:
                    result["topic_id"] = created.topic_id
                result["configs"] = self._config_entries(self._topic_config_values(), configs, CONFIG_SOURCE_DEFAULT)
            except TopicError as exc:
                result.update(
                    error_code=exc.error_code, error_message=exc.message, num_partitions=-1, replication_factor=-1
                )
            results.append(result)
        return _response(request, CREATE_TOPICS, {"topics": results})

    async def delete_topics(self, header: Any, request: Any) -> Any:
        if _version(request) >= 6:
            requested = []
            for t in request.topics:
                name = t.name
                if name is None:
                    name = next((n for n, e in self.logs.topics.items() if e.topic_id == t.topic_id), None)
                requested.append((name, t.topic_id))
        else:
            requested = [(name, None) for name in request.topic_names]
        responses = []
        for name, topic_id in requested:
            entry: dict[str, Any] = {"name": name, "topic_id": topic_id, "error_code": 0, "error_message": None}
            if name is None:
                entry["error_code"] = ErrorCode.unknown_topic_id
            else:
                topic = self.logs.topics.get(name)
                if topic is not None:
                    entry["topic_id"] = topic.topic_id
                try:
                    self.logs.delete_topic(name)
                except TopicError as exc:
                    entry.update(error_code=exc.error_code, error_message=exc.message)
            responses.append(entry)
        self._wake_fetchers()
        return _response(request, DELETE_TOPICS, {"responses": responses})

    async def delete_records(self, header: Any, request: Any) -> Any:
        topics = []
        for topic in request.topics:
            partitions = []
            for p in topic.partitions:
                entry: dict[str, Any] = {"partition_index": p.partition_index, "low_watermark": -1, "error_code": 0}
                partition_log = self.logs.get(topic.name, p.partition_index)
                if partition_log is None:
                    entry["error_code"] = ErrorCode.unknown_topic_or_partition
                else:
                    try:
                        entry["low_watermark"] = partition_log.delete_records(p.offset)
                    except OffsetOutOfRange:
                        entry["error_code"] = ErrorCode.offset_out_of_range
                partitions.append(entry)
            topics.append({"name": topic.name, "partitions": partitions})
        return _response(request, DELETE_RECORDS, {"topics": topics})

    async def create_partitions(self, header: Any, request: Any) -> Any:
        results = []
        for topic in request.topics:
            entry: dict[str, Any] = {"name": topic.name, "error_code": 0, "error_message": None}
            try:
                self.logs.add_partitions(topic.name, topic.count, request.validate_only)
            except TopicError as exc:
                entry.update(error_code=exc.error_code, error_message=exc.message)
            results.append(entry)
        return _response(request, CREATE_PARTITIONS, {"results": results})

    def _topic_config_values(self) -> dict[str, str]:
        defaults = self.config.log
        return {
            "cleanup.policy": "delete",
            "compression.type": "producer",
            "max.message.bytes": str(defaults.max_message_bytes),
            "message.timestamp.type": "CreateTime",
            "min.insync.replicas": "1",
            "retention.bytes": str(defaults.retention_bytes),
            "retention.ms": str(defaults.retention_ms),
            "segment.bytes": str(defaults.segment_bytes),
            "segment.ms": str(defaults.roll_ms),
        }

    def _broker_config_values(self) -> dict[str, str]:
        defaults = self.config.log
        return {
            "auto.create.topics.enable": str(self.config.auto_create_topics).lower(),
            "broker.id": str(self.config.node_id),
            "log.retention.bytes": str(defaults.retention_bytes),
            "log.retention.ms": str(defaults.retention_ms),
            "log.roll.ms": str(defaults.roll_ms),
            "log.segment.bytes": str(defaults.segment_bytes),
            "message.max.bytes": str(defaults.max_message_bytes),
            "node.id": str(self.config.node_id),
            "num.partitions": str(self.config.default_partitions),
            "socket.request.max.bytes": str(self.config.max_request_bytes),
        }

    @staticmethod
    def _config_entries(values: dict[str, str], overrides: dict[str, str], default_source: int) -> list[dict[str, Any]]:
        entries = []
        for name, value in values.items():
            override = name in overrides
            entries.append(
                {
                    "name": name,
                    "value": overrides.get(name, value),
                    "read_only": False,
                    "is_default": not override,
                    "config_source": CONFIG_SOURCE_TOPIC if override else default_source,
                    "is_sensitive": False,
                    "synonyms": [],
                    "config_type": CONFIG_TYPES.get(name, 0),
                    "documentation": None,
                }
            )
        return entries

    async def describe_configs(self, header: Any, request: Any) -> Any:
        results = []
        for resource in request.resources:
            entry: dict[str, Any] = {
                "error_code": 0,
                "error_message": None,
                "resource_type": resource.resource_type,
                "resource_name": resource.resource_name,
                "configs": [],
            }
            if resource.resource_type == TOPIC_RESOURCE:
                topic = self.logs.topics.get(resource.resource_name)
                if topic is None:
                    entry.update(
                        error_code=ErrorCode.unknown_topic_or_partition,
                        error_message=f"Topic '{resource.resource_name}' does not exist.",
                    )
                else:
                    entry["configs"] = self._config_entries(
                        self._topic_config_values(), topic.configs, CONFIG_SOURCE_DEFAULT
                    )
            elif resource.resource_type == BROKER_RESOURCE:
                entry["configs"] = self._config_entries(self._broker_config_values(), {}, CONFIG_SOURCE_STATIC_BROKER)
            else:
                entry.update(error_code=ErrorCode.invalid_request, error_message="unsupported resource type")
            keys = resource.configuration_keys
            if keys:
                entry["configs"] = [c for c in entry["configs"] if c["name"] in keys]
            results.append(entry)
        return _response(request, DESCRIBE_CONFIGS, {"results": results})

    async def alter_configs(self, header: Any, request: Any) -> Any:
        """The legacy AlterConfigs: a topic's overrides become exactly the given set."""
        return self._alter(request, ALTER_CONFIGS, lambda _current, resource: self._full_set(resource))

    async def incremental_alter_configs(self, header: Any, request: Any) -> Any:
        return self._alter(request, INCREMENTAL_ALTER_CONFIGS, self._incremental)

    @staticmethod
    def _full_set(resource: Any) -> dict[str, str]:
        return {c.name: c.value for c in resource.configs if c.value is not None}

    @staticmethod
    def _incremental(current: dict[str, str], resource: Any) -> dict[str, str]:
        configs = dict(current)
        for change in resource.configs:
            if change.config_operation == SET and change.value is not None:
                configs[change.name] = change.value
            elif change.config_operation == DELETE:
                configs.pop(change.name, None)
            else:
                raise TopicError(ErrorCode.invalid_config, f"{change.name}: only SET and DELETE are supported")
        return configs

    def _alter(self, request: Any, api_key: int, new_configs: Any) -> Any:
        responses = []
        for resource in request.resources:
            entry: dict[str, Any] = {
                "error_code": 0,
                "error_message": None,
                "resource_type": resource.resource_type,
                "resource_name": resource.resource_name,
            }
            try:
                if resource.resource_type != TOPIC_RESOURCE:
                    raise TopicError(ErrorCode.invalid_request, "only topic configs can be altered")
                topic = self.logs.topics.get(resource.resource_name)
                current = topic.configs if topic is not None else {}
                configs = new_configs(current, resource)
                self.logs.set_topic_configs(resource.resource_name, configs, request.validate_only)
            except TopicError as exc:
                entry.update(error_code=exc.error_code, error_message=exc.message)
            responses.append(entry)
        return _response(request, api_key, {"responses": responses})

    async def describe_cluster(self, header: Any, request: Any) -> Any:
        return _response(
            request,
            DESCRIBE_CLUSTER,
            {
                "error_code": 0,
                "error_message": None,
                "endpoint_type": getattr(request, "endpoint_type", 1),
                "cluster_id": self.cluster_id,
                "controller_id": self.config.node_id,
                "brokers": [self._broker()],
                "cluster_authorized_operations": -2147483648,
            },
        )

    # ---- InitProducerId -------------------------------------------------------------------------------------

    async def init_producer_id(self, header: Any, request: Any) -> Any:
        if request.transactional_id is not None:
            return _response(
                request,
                INIT_PRODUCER_ID,
                {"error_code": ErrorCode.invalid_request, "producer_id": -1, "producer_epoch": -1},
            )
        producer_id = getattr(request, "producer_id", -1)
        epoch = getattr(request, "producer_epoch", -1)
        if producer_id >= 0 and self._producer_epochs.get(producer_id, epoch) == epoch and epoch < 32766:
            epoch += 1
        else:
            producer_id = self.logs.allocate_producer_id()
            epoch = 0
        self._producer_epochs[producer_id] = epoch
        log.info("producer id %d epoch %d for client %s", producer_id, epoch, header.client_id)
        return _response(
            request, INIT_PRODUCER_ID, {"error_code": 0, "producer_id": producer_id, "producer_epoch": epoch}
        )


def _sync_all(logs: list[PartitionLog]) -> None:
    for partition_log in set(logs):
        partition_log.sync()
