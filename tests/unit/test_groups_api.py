"""Every group API at every served version: kio requests in, responses that encode and decode at that version."""

from __future__ import annotations

import asyncio
import datetime
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer

from tidepool.broker.groups.api import VERSIONS, register
from tidepool.broker.groups.entities import build

pytestmark = pytest.mark.timeout(60)


@dataclass
class FakeBroker:
    data_dir: Path
    node_id: int = 7
    advertised_host: str = "broker.example"
    advertised_port: int = 19092
    initial_rebalance_delay_ms: int = 0

    def topic_partitions(self, topic: str) -> int | None:
        return {"t": 2}.get(topic)


@dataclass
class Header:
    correlation_id: int = 1
    client_id: str | None = "client"


def roundtrip(response: Any) -> Any:
    """Encode the response as the server would and decode it again, so version-specific fields are checked."""
    buffer = io.BytesIO()
    entity_writer(type(response))(buffer, response)
    decoded, _ = entity_reader(type(response))(buffer.getvalue(), 0)
    assert decoded == response
    return decoded


class Client:
    def __init__(self, tmp_path: Path) -> None:
        self.table: dict[int, Any] = {}
        self.close = register(self.table, FakeBroker(tmp_path))

    async def call(self, api_key: int, version: int, /, **fields: Any) -> Any:
        request = build(load_request_schema(api_key, version), **fields)
        response = await self.table[api_key][2](Header(), request)
        assert type(response) is load_response_schema(api_key, version)
        return roundtrip(response)


def run(tmp_path: Path, body: Any) -> None:
    async def main() -> None:
        client = Client(tmp_path)
        try:
            await body(client)
        finally:
            await client.close()

    asyncio.run(main())


def versions(key: int) -> range:
    low, high = VERSIONS[key]
    return range(low, high + 1)


def test_register_adds_every_group_api_with_its_range(tmp_path: Path) -> None:
    async def body(client: Client) -> None:
        assert {k: v[:2] for k, v in client.table.items()} == VERSIONS

    run(tmp_path, body)


def test_find_coordinator_names_this_broker_at_every_version(tmp_path: Path) -> None:
    async def body(client: Client) -> None:
        for version in versions(10):
            r = await client.call(10, version, key="g", coordinator_keys=["g"], key_type=0)
            found = r.coordinators[0] if version >= 4 else r
            assert (found.node_id, found.host, found.port, found.error_code) == (
                7,
                "broker.example",
                19092,
                ErrorCode.none,
            )

    run(tmp_path, body)


async def join_and_sync(client: Client, group: str, join_v: int, sync_v: int) -> tuple[str, int]:
    fields = {
        "group_id": group,
        "session_timeout": datetime.timedelta(seconds=10),
        "rebalance_timeout": datetime.timedelta(seconds=10),
        "member_id": "",
        "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": b"meta"}],
    }
    joined = await client.call(11, join_v, **fields)
    if join_v >= 4:
        assert joined.error_code == ErrorCode.member_id_required and joined.member_id
        joined = await client.call(11, join_v, **{**fields, "member_id": joined.member_id})
    assert joined.error_code == ErrorCode.none and joined.protocol_name == "range"
    assert joined.leader == joined.member_id and [m.metadata for m in joined.members] == [b"meta"]
    synced = await client.call(
        14,
        sync_v,
        group_id=group,
        generation_id=joined.generation_id,
        member_id=joined.member_id,
        protocol_type="consumer",
        protocol_name="range",
        assignments=[{"member_id": joined.member_id, "assignment": b"assigned"}],
    )
    assert (synced.error_code, synced.assignment) == (ErrorCode.none, b"assigned")
    return joined.member_id, joined.generation_id


def test_join_sync_heartbeat_leave_at_every_version(tmp_path: Path) -> None:
    async def body(client: Client) -> None:
        for join_v in versions(11):
            sync_v = min(join_v, VERSIONS[14][1])
            group = f"g{join_v}"
            member, generation = await join_and_sync(client, group, join_v, sync_v)
            for hb_v in versions(12):
                r = await client.call(12, hb_v, group_id=group, generation_id=generation, member_id=member)
                assert r.error_code == ErrorCode.none
            leave_v = min(join_v, VERSIONS[13][1])
            r = await client.call(13, leave_v, group_id=group, member_id=member, members=[{"member_id": member}])
            assert r.error_code == ErrorCode.none
            if leave_v >= 3:
                assert [m.error_code for m in r.members] == [ErrorCode.none]
            stale = await client.call(12, 0, group_id=group, generation_id=generation, member_id=member)
            assert stale.error_code == ErrorCode.unknown_member_id

    run(tmp_path, body)


def test_offsets_commit_and_fetch_at_every_version(tmp_path: Path) -> None:
    async def body(client: Client) -> None:
        for commit_v in versions(8):
            group = f"simple{commit_v}"
            r = await client.call(
                8,
                commit_v,
                group_id=group,
                generation_id_or_member_epoch=-1,
                member_id="",
                topics=[
                    {
                        "name": "t",
                        "partitions": [
                            {"partition_index": 0, "committed_offset": 10 + commit_v, "committed_metadata": "m"},
                            {"partition_index": 5, "committed_offset": 1, "committed_metadata": None},
                        ],
                    },
                    {
                        "name": "nope",
                        "partitions": [{"partition_index": 0, "committed_offset": 1, "committed_metadata": None}],
                    },
                ],
            )
            codes = [[p.error_code for p in t.partitions] for t in r.topics]
            assert codes == [
                [ErrorCode.none, ErrorCode.unknown_topic_or_partition],
                [ErrorCode.unknown_topic_or_partition],
            ]
        for fetch_v in versions(9):
            for commit_v in versions(8):
                group = f"simple{commit_v}"
                wanted = [{"name": "t", "partition_indexes": [0, 1]}]
                if fetch_v >= 8:
                    r = await client.call(9, fetch_v, groups=[{"group_id": group, "topics": wanted}])
                    topics = r.groups[0].topics
                else:
                    r = await client.call(9, fetch_v, group_id=group, topics=wanted)
                    topics = r.topics
                offsets = [(p.partition_index, p.committed_offset, p.metadata) for p in topics[0].partitions]
                assert offsets == [(0, 10 + commit_v, "m"), (1, -1, "")]

    run(tmp_path, body)


def test_offset_fetch_with_null_topics_returns_every_committed_partition(tmp_path: Path) -> None:
    async def body(client: Client) -> None:
        await client.call(
            8,
            8,
            group_id="g",
            generation_id_or_member_epoch=-1,
            member_id="",
            topics=[
                {"name": "t", "partitions": [{"partition_index": 1, "committed_offset": 3, "committed_metadata": ""}]}
            ],
        )
        r = await client.call(9, 7, group_id="g", topics=None)
        assert [(t.name, [p.committed_offset for p in t.partitions]) for t in r.topics] == [("t", [3])]

    run(tmp_path, body)


def test_list_describe_delete_at_every_version(tmp_path: Path) -> None:
    async def body(client: Client) -> None:
        member, _ = await join_and_sync(client, "busy", 5, 3)
        await client.call(
            8,
            2,
            group_id="idle",
            generation_id_or_member_epoch=-1,
            member_id="",
            topics=[
                {"name": "t", "partitions": [{"partition_index": 0, "committed_offset": 3, "committed_metadata": ""}]}
            ],
        )
        for v in versions(16):
            r = await client.call(16, v, states_filter=[], types_filter=[])
            assert sorted((g.group_id, g.protocol_type) for g in r.groups) == [("busy", "consumer"), ("idle", "")]
        stable = await client.call(16, 4, states_filter=["stable"])
        assert [g.group_id for g in stable.groups] == ["busy"]
        for v in versions(15):
            r = await client.call(15, v, groups=["busy", "ghost"], include_authorized_operations=False)
            busy, ghost = r.groups
            assert (busy.group_state, busy.protocol_data, busy.members[0].member_id) == ("Stable", "range", member)
            assert busy.members[0].member_assignment == b"assigned"
            assert ghost.group_state == "Dead"
            expected = ErrorCode.group_id_not_found if v >= 6 else ErrorCode.none
            assert ghost.error_code == expected
        for v in versions(42):
            r = await client.call(42, v, groups_names=["busy", f"ghost{v}"])
            assert [x.error_code for x in r.results] == [ErrorCode.non_empty_group, ErrorCode.group_id_not_found]
        r = await client.call(42, 0, groups_names=["idle"])
        assert [x.error_code for x in r.results] == [ErrorCode.none]

    run(tmp_path, body)


def test_offset_delete_refuses_topics_an_active_member_subscribes_to(tmp_path: Path) -> None:
    from kio.schema.consumer_protocol_subscription.v1 import ConsumerProtocolSubscription

    buffer = io.BytesIO()
    buffer.write(b"\x00\x01")  # the consumer protocol's version prefix
    subscription = ConsumerProtocolSubscription(topics=("t",), user_data=None, owned_partitions=())
    entity_writer(ConsumerProtocolSubscription)(buffer, subscription)

    async def body(client: Client) -> None:
        fields = {
            "group_id": "g",
            "session_timeout": datetime.timedelta(seconds=10),
            "member_id": "",
            "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": buffer.getvalue()}],
        }
        joined = await client.call(11, 3, **fields)
        await client.call(14, 3, group_id="g", generation_id=1, member_id=joined.member_id, assignments=[])
        r = await client.call(
            47,
            0,
            group_id="g",
            topics=[{"name": "t", "partitions": [{"partition_index": 0}]}],
        )
        assert r.topics[0].partitions[0].error_code == ErrorCode.group_subscribed_to_topic
        r = await client.call(47, 0, group_id="none", topics=[])
        assert r.error_code == ErrorCode.group_id_not_found

    run(tmp_path, body)
