"""The classic group coordinator: Kafka's group state machine, parked join/sync responses, timers, offsets.

States, as in Kafka: Empty → PreparingRebalance → CompletingRebalance → Stable, and Dead once deleted or
expired. A join parks its response until the round completes: when every live member has rejoined, or at the
largest rebalance timeout (members that did not rejoin are dropped), or — for a group that was Empty — after
`initial_rebalance_delay_ms`. Members issued an id by MEMBER_ID_REQUIRED (KIP-394) are not waited for.
Errors are Kafka error codes (ints), mapped to kio entities in `api`. Everything runs on one asyncio loop.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from tidepool.broker.groups.consumer_protocol import subscribed_topics
from tidepool.broker.groups.store import CommittedOffset, OffsetStore
from tidepool.errors import TidepoolError
from tidepool.logs import get_logger

log = get_logger("broker.groups")

# Kafka error codes this module answers with.
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_METADATA_TOO_LARGE = 12
COORDINATOR_NOT_AVAILABLE = 15
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
FENCED_INSTANCE_ID = 82
GROUP_SUBSCRIBED_TO_TOPIC = 86


class GroupState(Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """Coordinator settings, named after Kafka's broker configs (group.*, offsets.*)."""

    initial_rebalance_delay_ms: int = 100  # Kafka: 3000; small so one consumer is Stable well under 1 s
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1_800_000
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000
    retention_check_interval_ms: int = 600_000
    max_metadata_bytes: int = 4096

    @classmethod
    def from_context(cls, context: object, environ: Mapping[str, str] = os.environ) -> GroupConfig:
        """Each setting from the broker context's attribute of the same name, else from the environment variable
        TIDEPOOL_GROUP_<NAME> (e.g. TIDEPOOL_GROUP_INITIAL_REBALANCE_DELAY_MS=0), else the default."""
        values: dict[str, int] = {}
        for name in cls.__dataclass_fields__:
            value = getattr(context, name, None)
            source = name
            if value is None:
                source = f"TIDEPOOL_GROUP_{name.upper()}"
                value = environ.get(source)
            if value is None:
                continue
            try:
                values[name] = int(value)
            except ValueError:
                raise TidepoolError(
                    f"{source} must be a whole number of milliseconds or bytes, got {value!r}", 2
                ) from None
            if values[name] < 0:
                raise TidepoolError(f"{source} must not be negative, got {value!r}", 2)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class JoinResult:
    error: int
    member_id: str = ""
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    members: tuple[tuple[str, str | None, bytes], ...] = ()  # (member_id, group_instance_id, metadata)


@dataclass(frozen=True, slots=True)
class SyncResult:
    error: int
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


@dataclass(frozen=True, slots=True)
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupDescription:
    group_id: str
    state: str
    protocol_type: str
    protocol_data: str
    members: tuple[MemberDescription, ...]


@dataclass(eq=False)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocols: list[tuple[str, bytes]]
    assignment: bytes = b""
    join_future: asyncio.Future[JoinResult] | None = None
    sync_future: asyncio.Future[SyncResult] | None = None
    expiry: asyncio.TimerHandle | None = None

    def metadata_for(self, protocol: str | None) -> bytes:
        return next((meta for name, meta in self.protocols if name == protocol), b"")


@dataclass(eq=False)
class Group:
    group_id: str
    state: GroupState = GroupState.EMPTY
    generation_id: int = 0
    protocol_type: str = ""
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    pending_members: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # group.instance.id → member id
    state_since_ms: int = field(default_factory=lambda: _now_ms())
    rebalance_timer: asyncio.TimerHandle | None = None
    initial_delay_left_ms: int = 0  # while > 0 or a delay timer runs, the round waits for more joiners
    in_initial_delay: bool = False
    joined_during_delay: bool = False

    def transition(self, state: GroupState, reason: str = "") -> None:
        if state is not self.state:
            log.info(
                "group %s: %s → %s (generation %d)%s",
                self.group_id,
                self.state.value,
                state.value,
                self.generation_id,
                f": {reason}" if reason else "",
            )
            self.state = state
            self.state_since_ms = _now_ms()

    def all_members_joined(self) -> bool:
        return all(member.join_future is not None for member in self.members.values())

    def supports(self, protocol_type: str, protocols: list[tuple[str, bytes]]) -> bool:
        """Kafka's rule: a joiner must offer a protocol that *every* current member supports."""
        if not protocol_type or not protocols:
            return False
        if not self.members:
            return True
        if protocol_type != self.protocol_type:
            return False
        common = set.intersection(*({name for name, _ in m.protocols} for m in self.members.values()))
        return bool(common & {name for name, _ in protocols})

    def select_protocol(self) -> str:
        """The protocol every member supports that most members list first among those (Kafka's vote)."""
        common = set.intersection(*({name for name, _ in m.protocols} for m in self.members.values()))
        votes: dict[str, int] = {}
        for member in self.members.values():
            choice = next(name for name, _ in member.protocols if name in common)
            votes[choice] = votes.get(choice, 0) + 1
        return max(votes, key=lambda name: votes[name])


def _now_ms() -> int:
    return int(time.time() * 1000)


class GroupCoordinator:
    """All groups of one broker; the one coordinator for every group id (single node)."""

    def __init__(
        self,
        store: OffsetStore,
        config: GroupConfig | None = None,
        partition_count: Callable[[str], int | None] | None = None,
    ) -> None:
        """`partition_count(topic)` (None: no such topic) lets offsets of deleted topics be dropped, as Kafka
        drops them when a topic is deleted; without it every stored offset is kept."""
        self.store = store
        self.config = config or GroupConfig()
        self.partition_count = partition_count
        self.groups: dict[str, Group] = {}
        self._started = False
        self._retention_timer: asyncio.TimerHandle | None = None
        self._load()

    # ---------------------------------------------------------------- lifecycle

    def _load(self) -> None:
        for group_id, saved in self.store.load_groups().items():
            self.groups[group_id] = self._group_from_saved(group_id, saved)
        for group_id in self.store.group_ids_with_offsets():
            self.groups.setdefault(group_id, Group(group_id))
        if self.groups:
            log.info("loaded %d groups from %s", len(self.groups), self.store.path)

    def _ensure_started(self) -> None:
        """Start timers on the running loop the first time a request arrives (loaded members' sessions)."""
        if self._started:
            return
        self._started = True
        for group in self.groups.values():
            for member in group.members.values():
                self._schedule_expiry(group, member)
        self._schedule_retention_check()

    def close(self) -> None:
        if self._retention_timer is not None:
            self._retention_timer.cancel()
        for group in self.groups.values():
            for member in group.members.values():
                if member.expiry is not None:
                    member.expiry.cancel()
            if group.rebalance_timer is not None:
                group.rebalance_timer.cancel()
        self.store.close()

    # ---------------------------------------------------------------- membership

    async def join(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        require_known_member_id: bool,
    ) -> JoinResult:
        self._ensure_started()
        if not group_id:
            return JoinResult(INVALID_GROUP_ID, member_id)
        if not self.config.min_session_timeout_ms <= session_timeout_ms <= self.config.max_session_timeout_ms:
            return JoinResult(INVALID_SESSION_TIMEOUT, member_id)
        if rebalance_timeout_ms < 0:
            rebalance_timeout_ms = session_timeout_ms
        group = self.groups.get(group_id)
        if group is None:
            if member_id:
                return JoinResult(UNKNOWN_MEMBER_ID, member_id)
            group = self.groups[group_id] = Group(group_id)
        if not group.supports(protocol_type, protocols):
            return JoinResult(INCONSISTENT_GROUP_PROTOCOL, member_id)

        if not member_id:
            if group_instance_id is not None and group_instance_id in group.static_members:
                return await self._rejoin_static(
                    group,
                    group_instance_id,
                    client_id,
                    client_host,
                    session_timeout_ms,
                    rebalance_timeout_ms,
                    protocols,
                )
            new_id = f"{group_instance_id or client_id}-{uuid.uuid4()}"
            if require_known_member_id and group_instance_id is None:
                self._add_pending(group, new_id, session_timeout_ms)
                return JoinResult(MEMBER_ID_REQUIRED, new_id)
            member_id = new_id
        elif member_id in group.pending_members:
            group.pending_members.pop(member_id).cancel()
        else:
            if group_instance_id is not None and group.static_members.get(group_instance_id) != member_id:
                return JoinResult(FENCED_INSTANCE_ID, member_id)
            known = group.members.get(member_id)
            if known is None:
                return JoinResult(UNKNOWN_MEMBER_ID, member_id)
            return await self._rejoin_known(group, known, session_timeout_ms, rebalance_timeout_ms, protocols)

        member = Member(
            member_id,
            group_instance_id,
            client_id,
            client_host,
            session_timeout_ms,
            rebalance_timeout_ms,
            protocols,
        )
        if group_instance_id is not None:
            group.static_members[group_instance_id] = member_id
        if not group.members:
            group.protocol_type = protocol_type
        group.members[member_id] = member
        log.info("group %s: member %s joined (client %s)", group.group_id, member_id, client_id)
        return await self._park_join(group, member, f"member {member_id} joined")

    async def _rejoin_known(
        self,
        group: Group,
        member: Member,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocols: list[tuple[str, bytes]],
    ) -> JoinResult:
        unchanged = member.protocols == protocols
        member.session_timeout_ms = session_timeout_ms
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.protocols = protocols
        if group.state is GroupState.COMPLETING_REBALANCE and unchanged:
            # The member missed its join response; the round is already decided, so repeat it.
            return self._join_result(group, member)
        if group.state is GroupState.STABLE and unchanged and member.member_id != group.leader_id:
            self._schedule_expiry(group, member)
            return self._join_result(group, member)
        return await self._park_join(group, member, f"member {member.member_id} rejoined")

    async def _rejoin_static(
        self,
        group: Group,
        instance_id: str,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocols: list[tuple[str, bytes]],
    ) -> JoinResult:
        """A restarted static member takes over its old slot under a new member id (KIP-345)."""
        old = group.members[group.static_members[instance_id]]
        self._fence(old)
        new_id = f"{instance_id}-{uuid.uuid4()}"
        old_id = old.member_id
        was_leader = group.leader_id == old_id
        # As Kafka: only a change of protocol names forces a rebalance; a restarted client owns nothing now,
        # so its subscription bytes differ even when its subscription does not.
        unchanged = [name for name, _ in old.protocols] == [name for name, _ in protocols]
        del group.members[old.member_id]
        old.member_id, old.client_id, old.client_host = new_id, client_id, client_host
        old.session_timeout_ms, old.rebalance_timeout_ms, old.protocols = (
            session_timeout_ms,
            rebalance_timeout_ms,
            protocols,
        )
        group.members[new_id] = old
        group.static_members[instance_id] = new_id
        if was_leader:
            group.leader_id = new_id
        log.info("group %s: static member %s rejoined as %s", group.group_id, instance_id, new_id)
        if group.state is GroupState.STABLE and unchanged:
            self._persist(group)
            self._schedule_expiry(group, old)
            # As Kafka: no rebalance. A restarted leader is told the *old* leader id, so it does not see itself
            # as leader and does not compute an assignment a Stable group would never hand out; its SyncGroup
            # returns its previous assignment.
            return JoinResult(
                NONE,
                new_id,
                group.generation_id,
                group.protocol_type,
                group.protocol_name,
                old_id if was_leader else group.leader_id or "",
            )
        return await self._park_join(group, old, f"static member {instance_id} rejoined")

    async def _park_join(self, group: Group, member: Member, reason: str) -> JoinResult:
        loop = asyncio.get_running_loop()
        if member.join_future is not None and not member.join_future.done():
            member.join_future.set_result(JoinResult(REBALANCE_IN_PROGRESS, member.member_id))
        future: asyncio.Future[JoinResult] = loop.create_future()
        member.join_future = future
        if member.expiry is not None:
            member.expiry.cancel()
            member.expiry = None
        if group.state is GroupState.PREPARING_REBALANCE:
            if group.in_initial_delay:
                group.joined_during_delay = True
            else:
                self._maybe_complete_join(group)
        else:
            self._prepare_rebalance(group, reason)
        return await future

    def _fence(self, member: Member) -> None:
        """Answer the parked requests of a static member's previous incarnation with FENCED_INSTANCE_ID."""
        if member.join_future is not None and not member.join_future.done():
            member.join_future.set_result(JoinResult(FENCED_INSTANCE_ID, member.member_id))
        if member.sync_future is not None and not member.sync_future.done():
            member.sync_future.set_result(SyncResult(FENCED_INSTANCE_ID))
        member.join_future = None
        member.sync_future = None

    def _add_pending(self, group: Group, member_id: str, session_timeout_ms: int) -> None:
        loop = asyncio.get_running_loop()

        def expire() -> None:
            if group.pending_members.pop(member_id, None) is not None:
                log.debug("group %s: pending member %s never rejoined", group.group_id, member_id)

        group.pending_members[member_id] = loop.call_later(session_timeout_ms / 1000, expire)

    def _prepare_rebalance(self, group: Group, reason: str) -> None:
        loop = asyncio.get_running_loop()
        if group.state is GroupState.COMPLETING_REBALANCE:
            for member in group.members.values():
                member.assignment = b""
                if member.sync_future is not None and not member.sync_future.done():
                    member.sync_future.set_result(SyncResult(REBALANCE_IN_PROGRESS))
                member.sync_future = None
        if group.rebalance_timer is not None:
            group.rebalance_timer.cancel()
        initial = group.state is GroupState.EMPTY
        group.transition(GroupState.PREPARING_REBALANCE, reason)
        rebalance_timeout_ms = max((m.rebalance_timeout_ms for m in group.members.values()), default=0)
        if initial:
            delay = self.config.initial_rebalance_delay_ms
            group.in_initial_delay = True
            group.joined_during_delay = False
            group.initial_delay_left_ms = max(rebalance_timeout_ms - delay, 0)
            group.rebalance_timer = loop.call_later(delay / 1000, self._initial_delay_over, group)
        else:
            group.rebalance_timer = loop.call_later(rebalance_timeout_ms / 1000, self._complete_join, group)
            self._maybe_complete_join(group)

    def _initial_delay_over(self, group: Group) -> None:
        delay = min(self.config.initial_rebalance_delay_ms, group.initial_delay_left_ms)
        if group.joined_during_delay and delay > 0:
            group.joined_during_delay = False
            group.initial_delay_left_ms -= delay
            group.rebalance_timer = asyncio.get_running_loop().call_later(delay / 1000, self._initial_delay_over, group)
            return
        group.in_initial_delay = False
        self._complete_join(group)

    def _maybe_complete_join(self, group: Group) -> None:
        if group.state is GroupState.PREPARING_REBALANCE and not group.in_initial_delay and group.all_members_joined():
            self._complete_join(group)

    def _complete_join(self, group: Group) -> None:
        if group.state is not GroupState.PREPARING_REBALANCE:
            return
        if group.rebalance_timer is not None:
            group.rebalance_timer.cancel()
            group.rebalance_timer = None
        group.in_initial_delay = False
        for member in [m for m in group.members.values() if m.join_future is None]:
            log.info("group %s: member %s did not rejoin in time, removed", group.group_id, member.member_id)
            self._remove_member(group, member)
        group.generation_id += 1
        if not group.members:
            group.protocol_name = None
            group.leader_id = None
            group.transition(GroupState.EMPTY)
            self._persist(group)
            return
        group.protocol_name = group.select_protocol()
        if group.leader_id not in group.members:
            group.leader_id = next(iter(group.members))
        group.transition(GroupState.COMPLETING_REBALANCE)
        for member in group.members.values():
            future, member.join_future = member.join_future, None
            if future is not None and not future.done():
                future.set_result(self._join_result(group, member))
            self._schedule_expiry(group, member)

    def _join_result(self, group: Group, member: Member) -> JoinResult:
        members: tuple[tuple[str, str | None, bytes], ...] = ()
        if member.member_id == group.leader_id:
            members = tuple(
                (m.member_id, m.group_instance_id, m.metadata_for(group.protocol_name)) for m in group.members.values()
            )
        return JoinResult(
            NONE,
            member.member_id,
            group.generation_id,
            group.protocol_type,
            group.protocol_name,
            group.leader_id or "",
            members,
        )

    async def sync(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: dict[str, bytes],
    ) -> SyncResult:
        self._ensure_started()
        group = self.groups.get(group_id)
        if group is None or group.state in (GroupState.EMPTY, GroupState.DEAD):
            return SyncResult(UNKNOWN_MEMBER_ID)
        error = self._check_member(group, member_id, group_instance_id)
        if error:
            return SyncResult(error)
        if generation_id != group.generation_id:
            return SyncResult(ILLEGAL_GENERATION)
        if (protocol_type is not None and protocol_type != group.protocol_type) or (
            protocol_name is not None and protocol_name != group.protocol_name
        ):
            return SyncResult(INCONSISTENT_GROUP_PROTOCOL)
        if group.state is GroupState.PREPARING_REBALANCE:
            return SyncResult(REBALANCE_IN_PROGRESS)
        member = group.members[member_id]
        self._schedule_expiry(group, member)
        if group.state is GroupState.STABLE:
            return self._sync_result(group, member)
        future: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()
        if member.sync_future is not None and not member.sync_future.done():
            member.sync_future.set_result(SyncResult(REBALANCE_IN_PROGRESS))  # superseded by this request
        member.sync_future = future
        if member_id == group.leader_id:
            for each in group.members.values():
                each.assignment = assignments.get(each.member_id, b"")
            group.transition(GroupState.STABLE)
            self._persist(group)
            for each in group.members.values():
                parked, each.sync_future = each.sync_future, None
                if parked is not None and not parked.done():
                    parked.set_result(self._sync_result(group, each))
        return await future

    def _sync_result(self, group: Group, member: Member) -> SyncResult:
        return SyncResult(NONE, member.assignment, group.protocol_type, group.protocol_name)

    def heartbeat(self, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None) -> int:
        self._ensure_started()
        group = self.groups.get(group_id)
        if group is None or group.state is GroupState.EMPTY:
            return UNKNOWN_MEMBER_ID
        if group.state is GroupState.DEAD:
            return COORDINATOR_NOT_AVAILABLE
        error = self._check_member(group, member_id, group_instance_id)
        if error:
            return error
        if generation_id != group.generation_id:
            return ILLEGAL_GENERATION
        self._schedule_expiry(group, group.members[member_id])
        if group.state is GroupState.PREPARING_REBALANCE:
            return REBALANCE_IN_PROGRESS
        return NONE

    def leave(self, group_id: str, leaving: list[tuple[str, str | None]]) -> tuple[int, list[int]]:
        """Remove (member_id, group_instance_id) pairs; returns (top-level error, one error per member)."""
        self._ensure_started()
        group = self.groups.get(group_id)
        if group is None:
            return UNKNOWN_MEMBER_ID, [UNKNOWN_MEMBER_ID] * len(leaving)
        errors: list[int] = []
        removed = False
        for member_id, instance_id in leaving:
            if instance_id is not None:
                known_id = group.static_members.get(instance_id)
                if known_id is None:
                    errors.append(UNKNOWN_MEMBER_ID)
                    continue
                if member_id and member_id != known_id:
                    errors.append(FENCED_INSTANCE_ID)
                    continue
                member_id = known_id
            if member_id in group.pending_members:
                group.pending_members.pop(member_id).cancel()
                errors.append(NONE)
                continue
            member = group.members.get(member_id)
            if member is None:
                errors.append(UNKNOWN_MEMBER_ID)
                continue
            log.info("group %s: member %s left", group.group_id, member_id)
            self._remove_member(group, member)
            removed = True
            errors.append(NONE)
        if removed:
            self._after_member_removed(group, "member left")
        top = errors[0] if len(errors) == 1 else NONE
        return top, errors

    def _check_member(self, group: Group, member_id: str, group_instance_id: str | None) -> int:
        if group_instance_id is not None and group.static_members.get(group_instance_id) != member_id:
            return FENCED_INSTANCE_ID if group_instance_id in group.static_members else UNKNOWN_MEMBER_ID
        if member_id not in group.members:
            return UNKNOWN_MEMBER_ID
        return NONE

    def _remove_member(self, group: Group, member: Member) -> None:
        group.members.pop(member.member_id, None)
        if member.group_instance_id is not None:
            group.static_members.pop(member.group_instance_id, None)
        if member.expiry is not None:
            member.expiry.cancel()
            member.expiry = None
        if member.join_future is not None and not member.join_future.done():
            member.join_future.set_result(JoinResult(UNKNOWN_MEMBER_ID, member.member_id))
        if member.sync_future is not None and not member.sync_future.done():
            member.sync_future.set_result(SyncResult(UNKNOWN_MEMBER_ID))
        member.join_future = member.sync_future = None
        if group.leader_id == member.member_id:
            group.leader_id = None

    def _after_member_removed(self, group: Group, reason: str) -> None:
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, reason)
        elif group.state is GroupState.PREPARING_REBALANCE:
            self._maybe_complete_join(group)

    def _schedule_expiry(self, group: Group, member: Member) -> None:
        if member.expiry is not None:
            member.expiry.cancel()
        member.expiry = asyncio.get_running_loop().call_later(
            member.session_timeout_ms / 1000, self._session_expired, group, member
        )

    def _session_expired(self, group: Group, member: Member) -> None:
        member.expiry = None
        if group.members.get(member.member_id) is not member:
            return
        if member.join_future is not None or member.sync_future is not None:
            # A member whose join or sync is parked is alive by definition (Kafka's shouldKeepAlive).
            self._schedule_expiry(group, member)
            return
        log.info(
            "group %s: member %s session timed out after %d ms, removed",
            group.group_id,
            member.member_id,
            member.session_timeout_ms,
        )
        self._remove_member(group, member)
        self._after_member_removed(group, f"member {member.member_id} session timed out")

    # ---------------------------------------------------------------- offsets

    def commit_offsets(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        offsets: list[tuple[str, int, int, int, str | None]],
    ) -> int:
        """Check the committer, then store (topic, partition, offset, epoch, metadata); one error for all."""
        self._ensure_started()
        group = self.groups.get(group_id)
        if not group_id:
            return INVALID_GROUP_ID
        if group is None:
            if generation_id >= 0:
                return ILLEGAL_GENERATION
            group = self.groups[group_id] = Group(group_id)
            self._persist(group)
        elif generation_id < 0 and group.state is GroupState.EMPTY:
            pass  # a group that only stores offsets (assign() consumers, admin tools)
        else:
            error = self._check_member(group, member_id, group_instance_id)
            if error:
                return error
            if generation_id != group.generation_id:
                return ILLEGAL_GENERATION
            if group.state is GroupState.COMPLETING_REBALANCE:
                return REBALANCE_IN_PROGRESS
            self._schedule_expiry(group, group.members[member_id])
        if offsets:
            try:
                self.store.commit(group_id, offsets)
            except sqlite3.Error as exc:  # disk full, I/O error: retriable for the client, nothing half-written
                log.error("group %s: cannot store %d offsets: %s", group_id, len(offsets), exc)
                return COORDINATOR_NOT_AVAILABLE
        return NONE

    def fetch_offsets(
        self, group_id: str, partitions: list[tuple[str, int]] | None
    ) -> dict[tuple[str, int], CommittedOffset | None]:
        """Committed offsets of `partitions` (None: every committed one); None where nothing is committed."""
        self._ensure_started()
        committed = self._committed(group_id) if group_id in self.groups else {}
        if partitions is None:
            return dict(sorted(committed.items()))
        return {tp: committed.get(tp) for tp in partitions}

    def _committed(self, group_id: str) -> dict[tuple[str, int], CommittedOffset]:
        """The group's stored offsets, minus (and purging) those of partitions that no longer exist."""
        committed = self.store.fetch(group_id)
        if self.partition_count is None:
            return committed
        counts: dict[str, int | None] = {}
        gone = []
        for topic, partition in committed:
            if topic not in counts:
                counts[topic] = self.partition_count(topic)
            count = counts[topic]
            if count is None or partition >= count:
                gone.append((topic, partition))
        if gone:
            self.store.delete_offsets(group_id, gone)
            log.info("group %s: dropped offsets of %d partitions that no longer exist", group_id, len(gone))
        return {tp: offset for tp, offset in committed.items() if tp not in gone}

    def delete_offsets(
        self, group_id: str, partitions: list[tuple[str, int]]
    ) -> tuple[int, dict[tuple[str, int], int]]:
        self._ensure_started()
        group = self.groups.get(group_id)
        if group is None:
            return GROUP_ID_NOT_FOUND, {}
        busy: set[str] = set()
        if group.state is not GroupState.EMPTY and group.protocol_type == "consumer":
            for member in group.members.values():
                busy |= subscribed_topics(member.metadata_for(group.protocol_name))
        errors = {tp: GROUP_SUBSCRIBED_TO_TOPIC if tp[0] in busy else NONE for tp in partitions}
        self.store.delete_offsets(group_id, [tp for tp, error in errors.items() if error == NONE])
        return NONE, errors

    # ---------------------------------------------------------------- admin

    def list_groups(self) -> list[tuple[str, str, str]]:
        """(group_id, protocol_type, state) of every group."""
        self._ensure_started()
        return [(g.group_id, g.protocol_type, g.state.value) for g in self.groups.values()]

    def describe(self, group_id: str) -> GroupDescription | None:
        self._ensure_started()
        group = self.groups.get(group_id)
        if group is None:
            return None
        stable = group.state is GroupState.STABLE
        members = tuple(
            MemberDescription(
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                m.metadata_for(group.protocol_name) if stable else b"",
                m.assignment if stable else b"",
            )
            for m in group.members.values()
        )
        protocol = group.protocol_name if stable and group.protocol_name else ""
        return GroupDescription(group.group_id, group.state.value, group.protocol_type, protocol, members)

    def delete_groups(self, group_ids: list[str]) -> dict[str, int]:
        self._ensure_started()
        results: dict[str, int] = {}
        for group_id in group_ids:
            group = self.groups.get(group_id)
            if group is None:
                results[group_id] = GROUP_ID_NOT_FOUND
            elif group.state is not GroupState.EMPTY:
                results[group_id] = NON_EMPTY_GROUP
            else:
                self._drop(group, "deleted")
                results[group_id] = NONE
        return results

    def _drop(self, group: Group, why: str) -> None:
        group.transition(GroupState.DEAD)
        self.store.delete_group(group.group_id)
        del self.groups[group.group_id]
        log.info("group %s: %s", group.group_id, why)

    # ---------------------------------------------------------------- retention and persistence

    def _schedule_retention_check(self) -> None:
        self._retention_timer = asyncio.get_running_loop().call_later(
            self.config.retention_check_interval_ms / 1000, self._retention_check
        )

    def _retention_check(self) -> None:
        try:
            self.expire_offsets(_now_ms())
        except sqlite3.Error as exc:
            log.error("offset retention check failed, retrying at the next one: %s", exc)
        finally:
            self._schedule_retention_check()

    def expire_offsets(self, now_ms: int) -> int:
        """Expire offsets of groups empty for the retention period (KIP-211); remove empty groups left bare."""
        retention = self.config.offsets_retention_ms
        dropped = 0
        for group in list(self.groups.values()):
            if group.state is not GroupState.EMPTY:
                continue
            if now_ms - group.state_since_ms >= retention:
                dropped += self.store.expire(group.group_id, now_ms - retention)
            if not self._committed(group.group_id):
                self._drop(group, "no members and no committed offsets, removed")
        if dropped:
            log.info("expired %d committed offsets", dropped)
        return dropped

    def _persist(self, group: Group) -> None:
        """Save a group at a stable point (Stable or Empty) so a restarted broker resumes it."""
        stable = group.state is GroupState.STABLE
        self.store.save_group(
            group.group_id,
            {
                "state": group.state.value if stable else GroupState.EMPTY.value,
                "state_since_ms": group.state_since_ms,
                "generation_id": group.generation_id,
                "protocol_type": group.protocol_type,
                "protocol_name": group.protocol_name if stable else None,
                "leader_id": group.leader_id if stable else None,
                "members": [_member_to_json(m) for m in group.members.values()] if stable else [],
            },
        )

    def _group_from_saved(self, group_id: str, saved: dict[str, Any]) -> Group:
        group = Group(
            group_id,
            state=GroupState(saved["state"]),
            generation_id=saved["generation_id"],
            protocol_type=saved["protocol_type"],
            protocol_name=saved["protocol_name"],
            leader_id=saved["leader_id"],
            state_since_ms=saved["state_since_ms"],
        )
        for raw in saved["members"]:
            member = _member_from_json(raw)
            group.members[member.member_id] = member
            if member.group_instance_id is not None:
                group.static_members[member.group_instance_id] = member.member_id
        return group


def _member_to_json(member: Member) -> dict[str, Any]:
    return {
        "member_id": member.member_id,
        "group_instance_id": member.group_instance_id,
        "client_id": member.client_id,
        "client_host": member.client_host,
        "session_timeout_ms": member.session_timeout_ms,
        "rebalance_timeout_ms": member.rebalance_timeout_ms,
        "protocols": [[name, base64.b64encode(meta).decode()] for name, meta in member.protocols],
        "assignment": base64.b64encode(member.assignment).decode(),
    }


def _member_from_json(raw: dict[str, Any]) -> Member:
    return Member(
        raw["member_id"],
        raw["group_instance_id"],
        raw["client_id"],
        raw["client_host"],
        raw["session_timeout_ms"],
        raw["rebalance_timeout_ms"],
        [(name, base64.b64decode(meta)) for name, meta in raw["protocols"]],
        base64.b64decode(raw["assignment"]),
    )
