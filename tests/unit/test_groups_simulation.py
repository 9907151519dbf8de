"""Many simulated consumers run the classic client protocol against the coordinator while others join, leave and
die at random moments; in the end every live consumer must hold exactly the assignment of the final generation.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from tidepool.broker.groups import coordinator as gc
from tidepool.broker.groups.coordinator import GroupConfig, GroupCoordinator
from tidepool.broker.groups.store import OffsetStore

pytestmark = pytest.mark.timeout(60)

CONFIG = GroupConfig(initial_rebalance_delay_ms=20, min_session_timeout_ms=50)
SESSION_MS = 300
HEARTBEAT_S = 0.05


@dataclass
class SimulatedConsumer:
    name: str
    member_id: str = ""
    generation: int = -1
    assignment: bytes = b""
    stable: bool = False
    dies: bool = False  # stops heartbeating without a LeaveGroup, like a SIGKILLed process
    leaves: bool = False

    async def run(self, c: GroupCoordinator) -> None:
        """Join, sync, heartbeat; rejoin when told to; the leader assigns each member its own id."""
        while True:
            self.stable = False
            joined = await c.join(
                "sim", self.member_id, None, self.name, "", SESSION_MS, 2 * SESSION_MS, "consumer",
                [("range", b"")], require_known_member_id=True,
            )  # fmt: skip
            if joined.error in (gc.MEMBER_ID_REQUIRED, gc.NONE):
                self.member_id = joined.member_id
            elif joined.error == gc.UNKNOWN_MEMBER_ID:
                self.member_id = ""
            if joined.error != gc.NONE:
                continue
            plan = {m: m.encode() for m, _, _ in joined.members} if joined.leader == self.member_id else {}
            synced = await c.sync("sim", joined.generation_id, self.member_id, None, "consumer", "range", plan)
            if synced.error == gc.UNKNOWN_MEMBER_ID:
                self.member_id = ""
            if synced.error != gc.NONE:
                continue
            self.generation, self.assignment, self.stable = joined.generation_id, synced.assignment, True
            while True:
                await asyncio.sleep(HEARTBEAT_S)
                if self.dies:
                    return
                if self.leaves:
                    c.leave("sim", [(self.member_id, None)])
                    return
                error = c.heartbeat("sim", self.generation, self.member_id, None)
                if error == gc.UNKNOWN_MEMBER_ID:
                    self.member_id = ""
                if error != gc.NONE:
                    break


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_joins_leaves_and_deaths_converge_to_one_consistent_generation(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)

    async def main() -> None:
        c = GroupCoordinator(OffsetStore(tmp_path), CONFIG)
        consumers: list[SimulatedConsumer] = []
        tasks: list[asyncio.Task[None]] = []

        def start(name: str) -> None:
            consumer = SimulatedConsumer(name)
            consumers.append(consumer)
            tasks.append(asyncio.create_task(consumer.run(c)))

        try:
            for i in range(5):
                start(f"c{i}")
            for step in range(12):
                await asyncio.sleep(rng.uniform(0, 0.15))
                live = [x for x in consumers if not (x.dies or x.leaves)]
                action = rng.choice(["join", "leave", "die"]) if len(live) > 2 else "join"
                if action == "join":
                    start(f"n{step}")
                else:
                    victim = rng.choice(live)
                    setattr(victim, "dies" if action == "die" else "leaves", True)

            live = [x for x in consumers if not (x.dies or x.leaves)]
            group = c.groups["sim"]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while loop.time() < deadline:
                settled = (
                    group.state is gc.GroupState.STABLE
                    and set(group.members) == {x.member_id for x in live}
                    and all(x.stable and x.generation == group.generation_id for x in live)
                )
                if settled:
                    break
                await asyncio.sleep(0.05)
            assert group.state is gc.GroupState.STABLE
            assert set(group.members) == {x.member_id for x in live}
            assert all(x.stable and x.generation == group.generation_id for x in live)
            assert all(x.assignment == x.member_id.encode() for x in live)  # each got the leader's plan for it
            assert group.leader_id in group.members
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            c.close()

    asyncio.run(main())
