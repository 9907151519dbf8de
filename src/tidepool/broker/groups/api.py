"""The group and offset APIs on the wire: kio request entities in, kio response entities out.

`register(table, context)` is the broker server's hook: it adds one async handler per API key, with the
version range served, and returns the coroutine the server awaits on shutdown. Handlers read the fields a
version has (`getattr` with the value Kafka assumes for older versions) and describe their response once;
`entities.build` keeps only the fields of the negotiated version.
"""

from __future__ import annotations

import contextvars
import datetime
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, Protocol

from tidepool.broker.groups.coordinator import (
    COORDINATOR_NOT_AVAILABLE,
    GROUP_ID_NOT_FOUND,
    NONE,
    OFFSET_METADATA_TOO_LARGE,
    UNKNOWN_TOPIC_OR_PARTITION,
    GroupConfig,
    GroupCoordinator,
)
from tidepool.broker.groups.entities import build, has_field
from tidepool.broker.groups.store import OffsetStore
from tidepool.logs import get_logger

log = get_logger("broker.groups")

Handler = Callable[[Any, Any], Awaitable[Any]]

# api_key → (min_version, max_version). Upper bounds stop before topic IDs (OffsetCommit/OffsetFetch v10).
VERSIONS: dict[int, tuple[int, int]] = {
    8: (2, 9),  # OffsetCommit
    9: (1, 9),  # OffsetFetch
    10: (0, 6),  # FindCoordinator
    11: (0, 9),  # JoinGroup
    12: (0, 4),  # Heartbeat
    13: (0, 5),  # LeaveGroup
    14: (0, 5),  # SyncGroup
    15: (0, 6),  # DescribeGroups
    16: (0, 5),  # ListGroups
    42: (0, 2),  # DeleteGroups
    47: (0, 0),  # OffsetDelete
}

# The client's address as the server saw it ("/127.0.0.1" in Kafka's style); a server may set it per connection.
client_host: contextvars.ContextVar[str] = contextvars.ContextVar("client_host", default="")


class BrokerContext(Protocol):
    """What the broker server offers the coordinator (see the contract in docs/groups.md)."""

    data_dir: Path
    node_id: int
    advertised_host: str
    advertised_port: int

    def topic_partitions(self, topic: str) -> int | None: ...


def register(
    table: MutableMapping[int, tuple[int, int, Handler]], context: BrokerContext
) -> Callable[[], Awaitable[None]]:
    """Serve the group APIs from `context.data_dir / "__groups"`; returns the shutdown coroutine."""
    store = OffsetStore(Path(context.data_dir) / "__groups")
    coordinator = GroupCoordinator(store, GroupConfig.from_context(context), context.topic_partitions)
    api = GroupApi(coordinator, context)
    handlers: dict[int, Handler] = {
        8: api.offset_commit,
        9: api.offset_fetch,
        10: api.find_coordinator,
        11: api.join_group,
        12: api.heartbeat,
        13: api.leave_group,
        14: api.sync_group,
        15: api.describe_groups,
        16: api.list_groups,
        42: api.delete_groups,
        47: api.offset_delete,
    }
    for key, handler in handlers.items():
        low, high = VERSIONS[key]
        table[key] = (low, high, handler)
    log.info("group coordinator ready (%s)", store.path)

    async def close() -> None:
        coordinator.close()

    return close


def _ms(value: datetime.timedelta | int) -> int:
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds() * 1000)
    return int(value)


def _response(request: Any) -> type:
    from kio.index import load_response_schema

    return load_response_schema(type(request).__api_key__, type(request).__version__)


class GroupApi:
    """One method per API key: decode fields, call the coordinator, build the response of that version."""

    def __init__(self, coordinator: GroupCoordinator, context: BrokerContext) -> None:
        self.coordinator = coordinator
        self.context = context

    async def find_coordinator(self, header: Any, request: Any) -> Any:
        cls = _response(request)
        key_type = getattr(request, "key_type", 0)
        keys = request.coordinator_keys if hasattr(request, "coordinator_keys") else (request.key,)
        coordinators = []
        for key in keys:
            error, message = NONE, None
            if key_type != 0:
                error, message = COORDINATOR_NOT_AVAILABLE, "only consumer-group coordinators are served"
            coordinators.append(
                {
                    "key": key,
                    "node_id": self.context.node_id if error == NONE else -1,
                    "host": self.context.advertised_host if error == NONE else "",
                    "port": self.context.advertised_port if error == NONE else -1,
                    "error_code": error,
                    "error_message": message,
                }
            )
        if has_field(cls, "coordinators"):
            return build(cls, coordinators=coordinators)
        return build(cls, **coordinators[0])

    async def join_group(self, header: Any, request: Any) -> Any:
        version = type(request).__version__
        session_ms = _ms(request.session_timeout)
        result = await self.coordinator.join(
            group_id=request.group_id,
            member_id=request.member_id,
            group_instance_id=getattr(request, "group_instance_id", None),
            client_id=header.client_id or "",
            client_host=client_host.get(),
            session_timeout_ms=session_ms,
            rebalance_timeout_ms=_ms(request.rebalance_timeout) if version >= 1 else session_ms,
            protocol_type=request.protocol_type,
            protocols=[(p.name, p.metadata) for p in request.protocols],
            require_known_member_id=version >= 4,
        )
        return build(
            _response(request),
            error_code=result.error,
            generation_id=result.generation_id,
            protocol_type=result.protocol_type,
            protocol_name=result.protocol_name,
            leader=result.leader,
            skip_assignment=False,
            member_id=result.member_id,
            members=[
                {"member_id": m, "group_instance_id": instance, "metadata": meta}
                for m, instance, meta in result.members
            ],
        )

    async def sync_group(self, header: Any, request: Any) -> Any:
        result = await self.coordinator.sync(
            group_id=request.group_id,
            generation_id=request.generation_id,
            member_id=request.member_id,
            group_instance_id=getattr(request, "group_instance_id", None),
            protocol_type=getattr(request, "protocol_type", None),
            protocol_name=getattr(request, "protocol_name", None),
            assignments={a.member_id: a.assignment for a in request.assignments},
        )
        return build(
            _response(request),
            error_code=result.error,
            protocol_type=result.protocol_type,
            protocol_name=result.protocol_name,
            assignment=result.assignment,
        )

    async def heartbeat(self, header: Any, request: Any) -> Any:
        error = self.coordinator.heartbeat(
            request.group_id,
            request.generation_id,
            request.member_id,
            getattr(request, "group_instance_id", None),
        )
        return build(_response(request), error_code=error)

    async def leave_group(self, header: Any, request: Any) -> Any:
        if hasattr(request, "members"):
            leaving = [(m.member_id, m.group_instance_id) for m in request.members]
        else:
            leaving = [(request.member_id, None)]
        top, errors = self.coordinator.leave(request.group_id, leaving)
        return build(
            _response(request),
            error_code=top if not hasattr(request, "members") else NONE,
            members=[
                {"member_id": member_id, "group_instance_id": instance_id, "error_code": error}
                for (member_id, instance_id), error in zip(leaving, errors, strict=True)
            ],
        )

    async def offset_commit(self, header: Any, request: Any) -> Any:
        to_store: list[tuple[str, int, int, int, str | None]] = []
        errors: dict[tuple[str, int], int] = {}
        max_metadata = self.coordinator.config.max_metadata_bytes
        for topic in request.topics:
            partitions = self.context.topic_partitions(topic.name)
            for p in topic.partitions:
                tp = (topic.name, p.partition_index)
                metadata = p.committed_metadata
                if partitions is None or not 0 <= p.partition_index < partitions:
                    errors[tp] = UNKNOWN_TOPIC_OR_PARTITION
                elif metadata is not None and len(metadata.encode()) > max_metadata:
                    errors[tp] = OFFSET_METADATA_TOO_LARGE
                else:
                    epoch = getattr(p, "committed_leader_epoch", -1)
                    to_store.append((topic.name, p.partition_index, p.committed_offset, epoch, metadata))
        error = self.coordinator.commit_offsets(
            request.group_id,
            request.generation_id_or_member_epoch,
            request.member_id,
            getattr(request, "group_instance_id", None),
            to_store,
        )
        for topic_name, partition, *_ in to_store:
            errors[(topic_name, partition)] = error
        return build(
            _response(request),
            topics=[
                {
                    "name": topic.name,
                    "partitions": [
                        {"partition_index": p.partition_index, "error_code": errors[(topic.name, p.partition_index)]}
                        for p in topic.partitions
                    ],
                }
                for topic in request.topics
            ],
        )

    async def offset_fetch(self, header: Any, request: Any) -> Any:
        cls = _response(request)
        if hasattr(request, "groups"):
            groups = [self._fetch_group(g.group_id, g.topics) for g in request.groups]
            return build(cls, groups=groups)
        group = self._fetch_group(request.group_id, request.topics)
        return build(cls, topics=group["topics"], error_code=group["error_code"])

    def _fetch_group(self, group_id: str, topics: Any) -> dict[str, Any]:
        wanted = None if topics is None else [(t.name, p) for t in topics for p in t.partition_indexes]
        committed = self.coordinator.fetch_offsets(group_id, wanted)
        by_topic: dict[str, list[dict[str, Any]]] = {}
        for (topic, partition), offset in committed.items():
            by_topic.setdefault(topic, []).append(
                {
                    "partition_index": partition,
                    "committed_offset": offset.offset if offset else -1,
                    "committed_leader_epoch": offset.leader_epoch if offset else -1,
                    "metadata": offset.metadata if offset else "",
                    "error_code": NONE,
                }
            )
        return {
            "group_id": group_id,
            "error_code": NONE,
            "topics": [{"name": name, "partitions": parts} for name, parts in by_topic.items()],
        }

    async def list_groups(self, header: Any, request: Any) -> Any:
        states = {s.lower() for s in getattr(request, "states_filter", ())}
        types = {t.lower() for t in getattr(request, "types_filter", ())}
        listed = [
            {"group_id": g, "protocol_type": ptype, "group_state": state, "group_type": "classic"}
            for g, ptype, state in self.coordinator.list_groups()
            if (not states or state.lower() in states) and (not types or "classic" in types)
        ]
        return build(_response(request), error_code=NONE, groups=listed)

    async def describe_groups(self, header: Any, request: Any) -> Any:
        version = type(request).__version__
        described = []
        for group_id in request.groups:
            group = self.coordinator.describe(group_id)
            if group is None:
                missing = version >= 6
                described.append(
                    {
                        "error_code": GROUP_ID_NOT_FOUND if missing else NONE,
                        "error_message": f"Group {group_id} not found." if missing else None,
                        "group_id": group_id,
                        "group_state": "Dead",
                        "protocol_type": "",
                        "protocol_data": "",
                        "members": [],
                    }
                )
                continue
            described.append(
                {
                    "error_code": NONE,
                    "group_id": group.group_id,
                    "group_state": group.state,
                    "protocol_type": group.protocol_type,
                    "protocol_data": group.protocol_data,
                    "members": [
                        {
                            "member_id": m.member_id,
                            "group_instance_id": m.group_instance_id,
                            "client_id": m.client_id,
                            "client_host": m.client_host,
                            "member_metadata": m.metadata,
                            "member_assignment": m.assignment,
                        }
                        for m in group.members
                    ],
                }
            )
        return build(_response(request), groups=described)

    async def delete_groups(self, header: Any, request: Any) -> Any:
        results = self.coordinator.delete_groups(list(request.groups_names))
        return build(
            _response(request),
            results=[{"group_id": g, "error_code": error} for g, error in results.items()],
        )

    async def offset_delete(self, header: Any, request: Any) -> Any:
        partitions = [(t.name, p.partition_index) for t in request.topics for p in t.partitions]
        known = {tp for tp in partitions if self._partition_exists(*tp)}
        error, errors = self.coordinator.delete_offsets(request.group_id, [tp for tp in partitions if tp in known])
        return build(
            _response(request),
            error_code=error,
            topics=[
                {
                    "name": t.name,
                    "partitions": [
                        {
                            "partition_index": p.partition_index,
                            "error_code": errors.get((t.name, p.partition_index), NONE)
                            if (t.name, p.partition_index) in known
                            else UNKNOWN_TOPIC_OR_PARTITION,
                        }
                        for p in t.partitions
                    ],
                }
                for t in request.topics
            ]
            if error == NONE
            else [],
        )

    def _partition_exists(self, topic: str, partition: int) -> bool:
        count = self.context.topic_partitions(topic)
        return count is not None and 0 <= partition < count
