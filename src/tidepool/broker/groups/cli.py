"""`tidepool groups list|describe|reset-offsets|delete`: kafka-consumer-groups.sh on confluent-kafka's AdminClient.

Only the Kafka protocol is used, so the same commands work against tidepool and Apache Kafka alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from tidepool.errors import TidepoolError

_BOOTSTRAP = click.option(
    "--bootstrap-server",
    default="127.0.0.1:9092",
    show_default=True,
    help="HOST:PORT of a broker (tidepool or Apache Kafka).",
)
_TIMEOUT_S = 15.0


def _admin(bootstrap_server: str) -> Any:
    """An AdminClient that already knows the cluster's brokers.

    librdkafka sends ListGroups to the brokers it knows at call time; right after creation that is none, and the
    listing comes back empty without an error. A metadata request first also fails fast when nothing listens.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    settings: dict[str, str | int | float | bool] = {
        "bootstrap.servers": bootstrap_server,
        "socket.timeout.ms": int(_TIMEOUT_S * 1000),
        "log_level": 0,
    }
    admin = AdminClient(settings)
    try:
        admin.list_topics(timeout=_TIMEOUT_S)
    except KafkaException as exc:
        raise TidepoolError(f"cannot reach a broker at {bootstrap_server}: {exc.args[0].str()}") from exc
    return admin


def _result(future: Any, what: str) -> Any:
    from confluent_kafka import KafkaException

    try:
        return future.result(timeout=_TIMEOUT_S)
    except KafkaException as exc:
        raise TidepoolError(f"{what}: {exc.args[0].str() if exc.args else exc}") from exc
    except TimeoutError as exc:
        raise TidepoolError(f"{what}: no answer within {_TIMEOUT_S:.0f} s (is the broker up?)") from exc


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Columns padded like kafka-consumer-groups.sh: left-aligned, at least one space apart."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        click.echo(" ".join(cells).rstrip())


def _state_name(state: Any) -> str:
    name = getattr(state, "name", str(state))
    return {
        "PREPARING_REBALANCING": "PreparingRebalance",
        "COMPLETING_REBALANCING": "CompletingRebalance",
    }.get(name, name.title().replace("_", ""))


@click.group()
def groups() -> None:
    """List, describe and reset consumer groups (like kafka-consumer-groups.sh)."""


@groups.command("list")
@_BOOTSTRAP
@click.option("--state", "show_state", is_flag=True, help="Show each group's state too.")
def list_groups(bootstrap_server: str, show_state: bool) -> None:
    """List every consumer group, one per line."""
    admin = _admin(bootstrap_server)  # keep a reference: a collected client never completes its futures
    listed = _result(admin.list_consumer_groups(), "listing groups")
    found = sorted(listed.valid, key=lambda g: g.group_id)
    if show_state:
        _table(["GROUP", "STATE"], [(g.group_id, _state_name(g.state)) for g in found])
        return
    for group in found:
        click.echo(group.group_id)


@groups.command("describe")
@_BOOTSTRAP
@click.option("--group", "group_id", required=True, help="The consumer group.")
def describe(bootstrap_server: str, group_id: str) -> None:
    """Committed offset, log-end offset and lag per partition, with the member that owns each partition."""
    admin = _admin(bootstrap_server)
    description = _describe(admin, group_id)
    committed = _committed(admin, group_id)
    owners: dict[tuple[str, int], Any] = {}
    for member in description.members:
        for tp in member.assignment.topic_partitions:
            owners[(tp.topic, tp.partition)] = member
    partitions = sorted(set(committed) | set(owners))
    ends = _offsets(admin, partitions, latest=True)
    state = _state_name(description.state)
    if not description.members:
        click.echo(f"\nConsumer group '{group_id}' has no active members.")
    if not partitions and state == "Dead":
        raise TidepoolError(f"Consumer group '{group_id}' does not exist.")
    click.echo()
    rows = []
    for tp in partitions:
        current = committed.get(tp)
        end = ends.get(tp)
        lag = end - current if current is not None and end is not None else "-"
        member = owners.get(tp)
        rows.append(
            (
                group_id,
                tp[0],
                tp[1],
                "-" if current is None else current,
                "-" if end is None else end,
                lag,
                member.member_id if member else "-",
                (member.host or "-") if member else "-",
                member.client_id if member else "-",
            )
        )
    header = ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID"]
    _table([*header, "HOST", "CLIENT-ID"], rows)


@groups.command("reset-offsets")
@_BOOTSTRAP
@click.option("--group", "group_id", required=True, help="The consumer group; it must have no active members.")
@click.option("--topic", "topics", required=True, multiple=True, help="TOPIC or TOPIC:P,P,… (repeatable).")
@click.option("--to-earliest", is_flag=True, help="Reset to the log start offset.")
@click.option("--to-latest", is_flag=True, help="Reset to the log end offset.")
@click.option("--to-offset", type=int, default=None, help="Reset to this offset (clamped to the log's range).")
@click.option("--execute", is_flag=True, help="Apply the plan; without it the plan is only printed.")
def reset_offsets(
    bootstrap_server: str,
    group_id: str,
    topics: tuple[str, ...],
    to_earliest: bool,
    to_latest: bool,
    to_offset: int | None,
    execute: bool,
) -> None:
    """Move a group's committed offsets (dry run unless --execute)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    if sum((to_earliest, to_latest, to_offset is not None)) != 1:
        raise TidepoolError("give exactly one of --to-earliest, --to-latest, --to-offset", 2)
    admin = _admin(bootstrap_server)
    state = _state_name(_describe(admin, group_id).state)
    if state not in ("Empty", "Dead", "Unknown"):
        raise TidepoolError(
            f"Assignments can only be reset if the group '{group_id}' is inactive, but the current state is {state}."
        )
    partitions = _partitions(admin, topics)
    earliest = _offsets(admin, partitions, latest=False)
    latest = _offsets(admin, partitions, latest=True)
    plan: dict[tuple[str, int], int] = {}
    for tp in partitions:
        if to_earliest:
            plan[tp] = earliest[tp]
        elif to_latest:
            plan[tp] = latest[tp]
        else:
            assert to_offset is not None
            plan[tp] = min(max(to_offset, earliest[tp]), latest[tp])
    if execute:
        request = ConsumerGroupTopicPartitions(group_id, [TopicPartition(t, p, o) for (t, p), o in plan.items()])
        futures = admin.alter_consumer_group_offsets([request])
        done = _result(futures[group_id], f"resetting offsets of group {group_id}")
        failed = [tp for tp in done.topic_partitions if tp.error is not None]
        if failed:
            raise TidepoolError(
                f"resetting offsets failed for {failed[0].topic}-{failed[0].partition}: {failed[0].error}"
            )
    else:
        click.echo("WARN: No action will be performed as the --execute option is missing. Add --execute to apply.")
    click.echo()
    _table(["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], [(group_id, t, p, o) for (t, p), o in plan.items()])


@groups.command("delete")
@_BOOTSTRAP
@click.option("--group", "group_ids", required=True, multiple=True, help="A group to delete (repeatable).")
def delete(bootstrap_server: str, group_ids: tuple[str, ...]) -> None:
    """Delete groups that have no active members, with their committed offsets."""
    admin = _admin(bootstrap_server)
    futures = admin.delete_consumer_groups(list(group_ids))
    for group_id in group_ids:
        _result(futures[group_id], f"deleting group {group_id}")
        click.echo(f"Deletion of requested consumer group '{group_id}' was successful.")


def _describe(admin: Any, group_id: str) -> Any:
    futures = admin.describe_consumer_groups([group_id])
    return _result(futures[group_id], f"describing group {group_id}")


def _committed(admin: Any, group_id: str) -> dict[tuple[str, int], int]:
    from confluent_kafka import ConsumerGroupTopicPartitions

    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)])
    result = _result(futures[group_id], f"fetching offsets of group {group_id}")
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions if tp.offset >= 0}


def _offsets(admin: Any, partitions: Sequence[tuple[str, int]], latest: bool) -> dict[tuple[str, int], int]:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    if not partitions:
        return {}
    spec = OffsetSpec.latest() if latest else OffsetSpec.earliest()
    futures = admin.list_offsets({TopicPartition(t, p): spec for t, p in partitions})
    found: dict[tuple[str, int], int] = {}
    for tp, future in futures.items():
        found[(tp.topic, tp.partition)] = _result(future, f"listing offsets of {tp.topic}-{tp.partition}").offset
    return found


def _partitions(admin: Any, topics: Sequence[str]) -> list[tuple[str, int]]:
    wanted: list[tuple[str, int]] = []
    for spec in topics:
        name, _, listed = spec.partition(":")
        metadata = admin.list_topics(topic=name, timeout=_TIMEOUT_S)
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None or not topic.partitions:
            raise TidepoolError(f"topic '{name}' does not exist")
        if listed:
            try:
                numbers = sorted({int(p) for p in listed.split(",")})
            except ValueError as exc:
                raise TidepoolError(f"bad partition list in --topic {spec!r}", 2) from exc
            unknown = [p for p in numbers if p not in topic.partitions]
            if unknown:
                raise TidepoolError(f"topic '{name}' has no partition {unknown[0]}")
        else:
            numbers = sorted(topic.partitions)
        wanted.extend((name, p) for p in numbers)
    return wanted
