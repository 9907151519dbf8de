"""Durable committed offsets and group metadata: one SQLite database in WAL mode under `<data-dir>/__groups`.

Every commit is one SQLite transaction written to the WAL before the client is answered, so a kill -9 of the
broker loses nothing acknowledged (synchronous=NORMAL: the OS has the bytes; a power cut may lose the last
commits, like Kafka with its default flush policy). Offsets expire per Kafka's rule (KIP-211): only while the
group has no members, `retention` after the later of the commit and the moment the group became empty.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tidepool.errors import TidepoolError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    committed_offset INTEGER NOT NULL,
    leader_epoch INTEGER NOT NULL,
    metadata TEXT,
    commit_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS groups (
    group_id TEXT PRIMARY KEY,
    state_json TEXT NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    """One committed position of a group on a partition."""

    topic: str
    partition: int
    offset: int
    leader_epoch: int
    metadata: str | None
    commit_ms: int


class OffsetStore:
    """Committed offsets and the last stable metadata of every group; small synchronous calls."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "groups.sqlite3"
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise TidepoolError(
                f"cannot open the consumer-group store {self.path}: {exc}; "
                "move it away to start without committed offsets"
            ) from exc

    def close(self) -> None:
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()

    def commit(self, group_id: str, offsets: list[tuple[str, int, int, int, str | None]]) -> None:
        """Store (topic, partition, offset, leader_epoch, metadata) rows for `group_id` atomically."""
        now = int(time.time() * 1000)
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO offsets VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(group_id, t, p, o, e, m, now) for t, p, o, e, m in offsets],
            )

    def fetch(self, group_id: str) -> dict[tuple[str, int], CommittedOffset]:
        rows = self._db.execute(
            "SELECT topic, partition, committed_offset, leader_epoch, metadata, commit_ms"
            " FROM offsets WHERE group_id = ?",
            (group_id,),
        ).fetchall()
        return {(r[0], r[1]): CommittedOffset(*r) for r in rows}

    def delete_offsets(self, group_id: str, partitions: list[tuple[str, int]]) -> None:
        with self._transaction():
            self._db.executemany(
                "DELETE FROM offsets WHERE group_id = ? AND topic = ? AND partition = ?",
                [(group_id, t, p) for t, p in partitions],
            )

    def delete_group(self, group_id: str) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM offsets WHERE group_id = ?", (group_id,))
            self._db.execute("DELETE FROM groups WHERE group_id = ?", (group_id,))

    def group_ids_with_offsets(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT group_id FROM offsets")]

    def save_group(self, group_id: str, state: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO groups VALUES (?, ?)",
            (group_id, json.dumps(state, separators=(",", ":"))),
        )

    def load_groups(self) -> dict[str, dict[str, Any]]:
        return {r[0]: json.loads(r[1]) for r in self._db.execute("SELECT group_id, state_json FROM groups")}

    def expire(self, group_id: str, older_than_ms: int) -> int:
        """Drop the group's offsets committed before `older_than_ms`; returns how many were dropped."""
        with self._transaction():
            cursor = self._db.execute(
                "DELETE FROM offsets WHERE group_id = ? AND commit_ms < ?", (group_id, older_than_ms)
            )
        return cursor.rowcount

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
