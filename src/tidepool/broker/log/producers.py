"""Idempotent-producer state of one partition: per producer id, its epoch and its last five batches.

A retried batch (same producer, epoch and sequence range as a cached one) is acknowledged with its original
offset instead of being appended twice; a gap in sequences is refused. State is rebuilt from batch headers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tidepool.broker.protocol.records import BatchHeader

CACHED_BATCHES = 5
SEQUENCE_MODULUS = 1 << 31

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
UNKNOWN_PRODUCER_ID = 59


@dataclass(slots=True)
class ProducerEntry:
    """Invariant: `batches` are the most recent appended batches of `epoch`, oldest first."""

    epoch: int
    batches: deque[tuple[int, int, int]] = field(default_factory=lambda: deque(maxlen=CACHED_BATCHES))
    last_timestamp: int = -1  # newest record timestamp seen from this producer, for expiry

    @property
    def last_sequence(self) -> int:
        return self.batches[-1][1] if self.batches else -1


@dataclass(frozen=True, slots=True)
class Duplicate:
    base_offset: int


@dataclass(frozen=True, slots=True)
class Rejected:
    error_code: int
    message: str


Verdict = Duplicate | Rejected | None


class ProducerStateTable:
    """Producer id → ProducerEntry for one partition."""

    def __init__(self) -> None:
        self.producers: dict[int, ProducerEntry] = {}

    def check(self, header: BatchHeader) -> Verdict:
        """None if the batch is to be appended, else Duplicate (answer its offset) or Rejected."""
        if header.producer_id < 0:
            return None
        entry = self.producers.get(header.producer_id)
        first, last = header.base_sequence, header.last_sequence
        if entry is None:
            if first != 0:
                return Rejected(UNKNOWN_PRODUCER_ID, f"unknown producer {header.producer_id} with sequence {first}")
            return None
        if header.producer_epoch < entry.epoch:
            return Rejected(
                INVALID_PRODUCER_EPOCH, f"producer epoch {header.producer_epoch} is older than {entry.epoch}"
            )
        if header.producer_epoch > entry.epoch:
            if first != 0:
                return Rejected(OUT_OF_ORDER_SEQUENCE_NUMBER, f"new epoch must start at sequence 0, got {first}")
            return None
        for cached_first, cached_last, base_offset in entry.batches:
            if cached_first == first and cached_last == last:
                return Duplicate(base_offset)
        expected = (entry.last_sequence + 1) % SEQUENCE_MODULUS
        if first != expected:
            return Rejected(OUT_OF_ORDER_SEQUENCE_NUMBER, f"expected sequence {expected} from producer, got {first}")
        return None

    def record(self, header: BatchHeader) -> None:
        """Remember an appended batch (its header carries the assigned base offset)."""
        if header.producer_id < 0:
            return
        entry = self.producers.get(header.producer_id)
        if entry is None or header.producer_epoch != entry.epoch:
            entry = ProducerEntry(header.producer_epoch)
            self.producers[header.producer_id] = entry
        entry.batches.append((header.base_sequence, header.last_sequence, header.base_offset))
        entry.last_timestamp = max(entry.last_timestamp, header.max_timestamp)

    def expire(self, now_ms: int, max_age_ms: int) -> int:
        """Forget producers silent for longer than `max_age_ms` (Kafka's producer.id.expiration.ms)."""
        stale = [pid for pid, e in self.producers.items() if e.last_timestamp < now_ms - max_age_ms]
        for pid in stale:
            del self.producers[pid]
        return len(stale)

    def to_json(self) -> dict[str, Any]:
        return {
            str(pid): {"epoch": e.epoch, "batches": list(e.batches), "last_timestamp": e.last_timestamp}
            for pid, e in self.producers.items()
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProducerStateTable:
        table = cls()
        for pid, entry in data.items():
            batches: deque[tuple[int, int, int]] = deque(maxlen=CACHED_BATCHES)
            batches.extend((int(a), int(b), int(c)) for a, b, c in entry["batches"])
            table.producers[int(pid)] = ProducerEntry(
                int(entry["epoch"]), batches, int(entry.get("last_timestamp", -1))
            )
        return table
