"""The group state machine without a network: joins, syncs, heartbeats, expiry, static members, offsets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tidepool.broker.groups import coordinator as gc
from tidepool.broker.groups.coordinator import GroupConfig, GroupCoordinator
from tidepool.broker.groups.store import OffsetStore
from tidepool.errors import TidepoolError

pytestmark = pytest.mark.timeout(30)

FAST = GroupConfig(initial_rebalance_delay_ms=50, min_session_timeout_ms=100)


def run(body: Callable[[GroupCoordinator], Awaitable[Any]], tmp_path: Path, config: GroupConfig = FAST) -> Any:
    async def main() -> Any:
        coordinator = GroupCoordinator(OffsetStore(tmp_path), config)
        try:
            return await body(coordinator)
        finally:
            coordinator.close()

    return asyncio.run(main())


async def join(
    c: GroupCoordinator,
    member_id: str = "",
    *,
    group: str = "g",
    protocols: list[tuple[str, bytes]] | None = None,
    session_ms: int = 1000,
    rebalance_ms: int = 2000,
    instance: str | None = None,
) -> gc.JoinResult:
    return await c.join(
        group,
        member_id,
        instance,
        "client",
        "/127.0.0.1",
        session_ms,
        rebalance_ms,
        "consumer",
        protocols or [("range", b"r")],
        require_known_member_id=True,
    )


async def join_new(c: GroupCoordinator, **kwargs: Any) -> gc.JoinResult:
    """KIP-394: the first join only hands out a member id; the second one really joins."""
    first = await join(c, **kwargs)
    assert first.error == gc.MEMBER_ID_REQUIRED
    return await join(c, first.member_id, **kwargs)


def test_single_member_gets_id_then_leads_a_stable_group(tmp_path: Path) -> None:
    async def body(c: GroupCoordinator) -> None:
        first = await join(c)
        assert first.error == gc.MEMBER_ID_REQUIRED and first.member_id.startswith("client-")
        assert c.groups["g"].members == {}  # a pending id is not a member yet
        loop = asyncio.get_running_loop()
        started = loop.time()
        joined = await join(c, first.member_id)
        assert loop.time() - started < 0.5
        assert (joined.error, joined.generation_id, joined.leader) == (0, 1, first.member_id)
        assert joined.protocol_name == "range" and [m[0] for m in joined.members] == [first.member_id]
        assert c.groups["g"].state is gc.GroupState.COMPLETING_REBALANCE
        synced = await c.sync("g", 1, joined.member_id, None, "consumer", "range", {joined.member_id: b"A"})
        assert (synced.error, synced.assignment) == (0, b"A")
        assert c.groups["g"].state is gc.GroupState.STABLE
        assert c.heartbeat("g", 1, joined.member_id, None) == 0

    run(body, tmp_path)


def test_second_member_triggers_rebalance_seen_by_heartbeat(tmp_path: Path) -> None:
    async def body(c: GroupCoordinator) -> None:
        a = await join_new(c)
        await c.sync("g", 1, a.member_id, None, None, None, {a.member_id: b"all"})
        b_first = await join(c)
        b_task = asyncio.create_task(join(c, b_first.member_id))
        await asyncio.sleep(0.01)
        assert c.groups["g"].state is gc.GroupState.PREPARING_REBALANCE
        assert c.heartbeat("g", 1, a.member_id, None) == gc.REBALANCE_IN_PROGRESS
        assert not b_task.done()  # parked until a rejoins
        a2 = await join(c, a.member_id)
        b = await b_task
        assert a2.generation_id == b.generation_id == 2
        assert a2.leader == a.member_id and len(a2.members) == 2 and b.members == ()
        b_sync = asyncio.create_task(c.sync("g", 2, b.member_id, None, None, None, {}))
        await asyncio.sleep(0.01)
        assert not b_sync.done()  # a follower waits for the leader's assignment
        a_sync = await c.sync("g", 2, a.member_id, None, None, None, {a.member_id: b"x", b.member_id: b"y"})
        assert (a_sync.assignment, (await b_sync).assignment) == (b"x", b"y")
        assert c.heartbeat("g", 1, a.member_id, None) == gc.ILLEGAL_GENERATION

    run(body, tmp_path)


def test_member_that_stops_heartbeating_is_removed_and_the_other_takes_over(tmp_path: Path) -> None:
    async def body(c: GroupCoordinator) -> None:
        a_first, b_first = await join(c, session_ms=300), await join(c, session_ms=300)
        a, b = await asyncio.gather(
            join(c, a_first.member_id, session_ms=300), join(c, b_first.member_id, session_ms=300)
        )
        assert a.generation_id == b.generation_id == 1  # the initial delay gathered both into one round
        leader, follower = (a, b) if a.leader == a.member_id else (b, a)
        await asyncio.gather(
            c.sync("g", 1, leader.member_id, None, None, None, {}),
            c.sync("g", 1, follower.member_id, None, None, None, {}),
        )
        for _ in range(6):  # only the leader keeps heartbeating
            await asyncio.sleep(0.1)
            error = c.heartbeat("g", c.groups["g"].generation_id, leader.member_id, None)
            if error == gc.REBALANCE_IN_PROGRESS:
                break
        assert error == gc.REBALANCE_IN_PROGRESS
        assert follower.member_id not in c.groups["g"].members
        again = await join(c, leader.member_id, session_ms=300)
        assert again.generation_id == 2 and [m[0] for m in again.members] == [leader.member_id]

    run(body, tmp_path)


def test_member_that_does_not_rejoin_in_the_rebalance_timeout_is_dropped(tmp_path: Path) -> None:
    async def body(c: GroupCoordinator) -> None:
        a = await join_new(c, rebalance_ms=200, session_ms=5000)
        await c.sync("g", 1, a.member_id, None, None, None, {})
        b_first = await join(c, rebalance_ms=200, session_ms=5000)
        loop = asyncio.get_running_loop()
        started = loop.time()
        b = await join(c, b_first.member_id, rebalance_ms=200, session_ms=5000)
        assert 0.15 < loop.time() - started < 1.5
        assert b.leader == b.member_id and b.generation_id == 2
        assert list(c.groups["g"].members) == [b.member_id]

    run(body, tmp_path)


def test_leave_of_last_member_empties_group_and_keeps_offsets(tmp_path: Path) -> None:
    async def body(c: GroupCoordinator) -> None:
        a = await join_new(c)
        await c.sync("g", 1, a.member_id, None, None, None, {})
        assert c.commit_offsets("g", 1, a.member_id, None, [("t", 0, 42, -1, "meta")]) == 0
        top, errors = c.leave("g", [(a.member_id, None)])
        assert (top, errors) == (0, [0])
        assert c.groups["g"].state is gc.GroupState.EMPTY and c.groups["g"].generation_id == 2
        offset = c.fetch_offsets("g", [("t", 0), ("t", 1)])
        assert offset[("t", 0)] is not None and offset[("t", 0)].offset == 42
        assert offset[("t", 1)] is None
        assert c.leave("g", [("nobody", None)]) == (gc.UNKNOWN_MEMBER_ID, [gc.UNKNOWN_MEMBER_ID])

    run(body, tmp_path)


def test_commit_is_checked_against_membership_and_generation(tmp_path: Path) -> None:
    async def body(c: GroupCoordinator) -> None:
        assert c.commit_offsets("simple", -1, "", None, [("t", 0, 5, -1, None)]) == 0  # assign() consumer
        assert c.commit_offsets("nogroup", 3, "m", None, [("t", 0, 5, -1, None)]) == gc.ILLEGAL_GENERATION
        a = await join_new(c)
        assert c.commit_offsets("g", 1, a.member_id, None, []) == gc.REBALANCE_IN_PROGRESS
        await c.sync("g", 1, a.member_id, None, None, None, {})
        assert c.commit_offsets("g", 1, "stranger", None, []) == gc.UNKNOWN_MEMBER_ID
        assert c.commit_offsets("g", 0, a.member_id, None, []) == gc.ILLEGAL_GENERATION
        assert c.commit_offsets("g", -1, "", None, []) == gc.UNKNOWN_MEMBER_ID  # the group is in use

    run(body, tmp_path)


def test_inconsistent_protocols_and_bad_session_timeouts_are_refused(tmp_path: Path) -> None:
    async def body(c: GroupCoordinator) -> None:
        a = await join_new(c, protocols=[("range", b"")])
        await c.sync("g", 1, a.member_id, None, None, None, {})
        other = await join(c, protocols=[("roundrobin", b"")])
        assert other.error == gc.INCONSISTENT_GROUP_PROTOCOL
        assert (await join(c, session_ms=10)).error == gc.INVALID_SESSION_TIMEOUT
        assert (await join(c, group="")).error == gc.INVALID_GROUP_ID
        assert (await join(c, "made-up")).error == gc.UNKNOWN_MEMBER_ID

    run(body, tmp_path)


def test_joiner_must_share_a_protocol_with_all_members_not_just_each(tmp_path: Path) -> None:
    async def body(c: GroupCoordinator) -> None:
        xy, yz = [("x", b""), ("y", b"")], [("y", b""), ("z", b"")]
        firsts = [await join(c, protocols=p) for p in (xy, yz)]
        await asyncio.gather(*(join(c, f.member_id, protocols=p) for f, p in zip(firsts, (xy, yz), strict=True)))
        assert (await join(c, protocols=[("x", b""), ("z", b"")])).error == gc.INCONSISTENT_GROUP_PROTOCOL
        assert (await join(c, protocols=[("y", b"")])).error == gc.MEMBER_ID_REQUIRED

    run(body, tmp_path)


def test_protocol_chosen_is_the_one_most_members_prefer_among_common_ones(tmp_path: Path) -> None:
    async def body(c: GroupCoordinator) -> None:
        protocols = [[("sticky", b""), ("range", b"")], [("range", b""), ("sticky", b"")], [("range", b"")]]
        firsts = [await join(c, protocols=p) for p in protocols]
        results = await asyncio.gather(
            *(join(c, f.member_id, protocols=p) for f, p in zip(firsts, protocols, strict=True))
        )
        assert {r.protocol_name for r in results} == {"range"}

    run(body, tmp_path)


def test_static_member_restart_keeps_its_assignment_without_rebalance(tmp_path: Path) -> None:
    async def body(c: GroupCoordinator) -> None:
        a, b = await asyncio.gather(join(c, instance="host-a"), join(c, instance="host-b"))
        assert a.error == b.error == 0  # static members skip MEMBER_ID_REQUIRED
        assert a.generation_id == b.generation_id == 1
        leader, follower = (a, b) if a.leader == a.member_id else (b, a)
        follower_instance = "host-b" if follower is b else "host-a"
        await asyncio.gather(
            c.sync("g", 1, leader.member_id, None, None, None, {a.member_id: b"pa", b.member_id: b"pb"}),
            c.sync("g", 1, follower.member_id, None, None, None, {}),
        )
        restarted = await join(c, instance=follower_instance)
        assert restarted.error == 0 and restarted.generation_id == 1 and restarted.member_id != follower.member_id
        assert c.groups["g"].state is gc.GroupState.STABLE
        synced = await c.sync("g", 1, restarted.member_id, follower_instance, None, None, {})
        assert synced.assignment == (b"pb" if follower is b else b"pa")
        # The old incarnation is fenced.
        assert c.heartbeat("g", 1, follower.member_id, follower_instance) == gc.FENCED_INSTANCE_ID
        # A restarted leader is told the old leader id, so it acts as a follower; still no rebalance.
        leader_instance = "host-a" if leader is a else "host-b"
        restarted_leader = await join(c, instance=leader_instance)
        assert restarted_leader.leader == leader.member_id != restarted_leader.member_id
        assert restarted_leader.members == () and c.groups["g"].state is gc.GroupState.STABLE
        synced = await c.sync("g", 1, restarted_leader.member_id, leader_instance, None, None, {})
        assert synced.assignment == (b"pa" if leader is a else b"pb")
        assert c.groups["g"].leader_id == restarted_leader.member_id

    run(body, tmp_path)


def test_offsets_and_stable_group_survive_restart(tmp_path: Path) -> None:
    state: dict[str, Any] = {}

    async def first(c: GroupCoordinator) -> None:
        a = await join_new(c, session_ms=5000)
        await c.sync("g", 1, a.member_id, None, None, None, {a.member_id: b"asg"})
        assert c.commit_offsets("g", 1, a.member_id, None, [("t", 0, 7, 3, None), ("t", 1, 9, 3, "m")]) == 0
        state["member"] = a.member_id

    async def second(c: GroupCoordinator) -> None:
        assert c.groups["g"].state is gc.GroupState.STABLE
        assert c.heartbeat("g", 1, state["member"], None) == 0  # no rebalance needed after a restart
        offsets = c.fetch_offsets("g", None)
        assert [(tp, o.offset, o.leader_epoch, o.metadata) for tp, o in offsets.items() if o] == [
            (("t", 0), 7, 3, None),
            (("t", 1), 9, 3, "m"),
        ]
        assert [d.assignment for d in c.describe("g").members] == [b"asg"]  # type: ignore[union-attr]

    run(first, tmp_path)
    run(second, tmp_path)


def test_offsets_of_a_group_empty_past_retention_expire_and_the_group_goes(tmp_path: Path) -> None:
    async def body(c: GroupCoordinator) -> None:
        c.commit_offsets("old", -1, "", None, [("t", 0, 1, -1, None)])
        now = gc._now_ms()
        assert c.expire_offsets(now) == 0
        assert c.expire_offsets(now + 61_000) == 1
        assert "old" not in c.groups and c.fetch_offsets("old", [("t", 0)]) == {("t", 0): None}

    run(body, tmp_path, GroupConfig(offsets_retention_ms=60_000))


def test_empty_group_without_offsets_is_removed_at_the_next_check(tmp_path: Path) -> None:
    async def body(c: GroupCoordinator) -> None:
        a = await join_new(c)
        await c.sync("g", 1, a.member_id, None, None, None, {})
        c.leave("g", [(a.member_id, None)])
        c.expire_offsets(gc._now_ms())
        assert "g" not in c.groups and c.list_groups() == []

    run(body, tmp_path)


def test_repeated_join_of_a_parked_member_supersedes_the_first(tmp_path: Path) -> None:
    async def body(c: GroupCoordinator) -> None:
        a, b = await asyncio.gather(join_new(c), join_new(c))
        await asyncio.gather(*(c.sync("g", 1, m.member_id, None, None, None, {}) for m in (a, b)))
        newcomer = await join(c)
        newcomer_join = asyncio.create_task(join(c, newcomer.member_id))
        a_join = asyncio.create_task(join(c, a.member_id))
        await asyncio.sleep(0.01)
        a_again = asyncio.create_task(join(c, a.member_id))
        superseded = await a_join
        assert superseded.error == gc.REBALANCE_IN_PROGRESS  # the client retries with the same member id
        b_join = await join(c, b.member_id)
        assert (await a_again).generation_id == (await newcomer_join).generation_id == b_join.generation_id == 2

    run(body, tmp_path)


def test_delete_groups_refuses_active_groups(tmp_path: Path) -> None:
    async def body(c: GroupCoordinator) -> None:
        a = await join_new(c)
        c.commit_offsets("idle", -1, "", None, [("t", 0, 1, -1, None)])
        assert c.delete_groups(["g", "idle", "nope"]) == {
            "g": gc.NON_EMPTY_GROUP,
            "idle": 0,
            "nope": gc.GROUP_ID_NOT_FOUND,
        }
        assert [g for g, _, _ in c.list_groups()] == ["g"]
        assert a.error == 0

    run(body, tmp_path)


def test_settings_come_from_the_broker_context_then_the_environment() -> None:
    class Context:
        initial_rebalance_delay_ms = 0

    environ = {"TIDEPOOL_GROUP_INITIAL_REBALANCE_DELAY_MS": "500", "TIDEPOOL_GROUP_OFFSETS_RETENTION_MS": "60000"}
    config = GroupConfig.from_context(Context(), environ)
    assert (config.initial_rebalance_delay_ms, config.offsets_retention_ms) == (0, 60000)
    assert GroupConfig.from_context(object(), {}) == GroupConfig()
    with pytest.raises(TidepoolError, match="TIDEPOOL_GROUP_MIN_SESSION_TIMEOUT_MS must be a whole number"):
        GroupConfig.from_context(object(), {"TIDEPOOL_GROUP_MIN_SESSION_TIMEOUT_MS": "6s"})


def test_offsets_of_a_deleted_topic_are_dropped_so_a_recreated_topic_starts_fresh(tmp_path: Path) -> None:
    topics = {"kept": 2, "deleted": 2}

    async def body(c: GroupCoordinator) -> None:
        c.commit_offsets("g", -1, "", None, [("kept", 0, 4, -1, None), ("deleted", 1, 50, -1, None)])
        del topics["deleted"]
        assert list(c.fetch_offsets("g", None)) == [("kept", 0)]
        topics["deleted"] = 2  # recreated: its old offset must not come back
        assert c.fetch_offsets("g", [("deleted", 1)]) == {("deleted", 1): None}

    async def main() -> None:
        c = GroupCoordinator(OffsetStore(tmp_path), FAST, topics.get)
        try:
            await body(c)
        finally:
            c.close()

    asyncio.run(main())


def test_commit_that_cannot_be_stored_is_a_retriable_error_not_a_crash(tmp_path: Path) -> None:
    import sqlite3

    async def body(c: GroupCoordinator) -> None:
        def disk_full(group_id: str, offsets: object) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        c.store.commit = disk_full  # type: ignore[method-assign]
        assert c.commit_offsets("g", -1, "", None, [("t", 0, 1, -1, None)]) == gc.COORDINATOR_NOT_AVAILABLE

    run(body, tmp_path)


def test_unreadable_store_stops_with_a_message_that_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "groups.sqlite3").write_bytes(b"not a database, " * 512)
    with pytest.raises(TidepoolError, match="move it away to start without committed offsets"):
        OffsetStore(tmp_path)
