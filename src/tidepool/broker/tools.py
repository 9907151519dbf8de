"""Kafka-style command-line tools (`tidepool topics`, `console-producer`, `console-consumer`).

Built on confluent-kafka (librdkafka), so they work unchanged against Apache Kafka as well as tidepool.
Output follows Apache Kafka's kafka-topics.sh / kafka-console-*.sh scripts.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from tidepool.errors import TidepoolError

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"

bootstrap_option = click.option(
    "--bootstrap-server",
    default=DEFAULT_BOOTSTRAP,
    show_default=True,
    envvar="TIDEPOOL_BOOTSTRAP_SERVER",
    help="HOST:PORT of a broker (tidepool or Apache Kafka).",
)
timeout_option = click.option(
    "--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for the broker."
)


def _admin(bootstrap: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})  # failures are reported once, below


def _wait(futures: dict[str, Any], timeout: float, success: str | None) -> None:
    failed = False
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
        except Exception as exc:
            failed = True
            click.echo(f"Error while executing topic command : {_kafka_message(exc)} ({name})", err=True)
        else:
            if success:
                click.echo(success.format(name=name))
    if failed:
        raise SystemExit(1)


def _kafka_message(exc: Exception) -> str:
    error = exc.args[0] if exc.args else exc
    text = getattr(error, "str", None)
    return text() if callable(text) else str(exc)


def _topic_metadata(bootstrap: str, timeout: float) -> Any:
    try:
        return _admin(bootstrap).list_topics(timeout=timeout)
    except Exception as exc:
        raise TidepoolError(f"cannot reach {bootstrap}: {_kafka_message(exc)}", 1) from exc


@click.group()
def topics() -> None:
    """Create, list, describe and delete topics (like kafka-topics.sh)."""


@topics.command("create")
@bootstrap_option
@click.option("--topic", required=True)
@click.option("--partitions", type=click.IntRange(1), default=None, help="[default: the broker's default]")
@click.option("--replication-factor", type=click.IntRange(1), default=None, help="[default: the broker's default]")
@click.option("--config", "configs", multiple=True, metavar="NAME=VALUE", help="Topic config override.")
@click.option("--if-not-exists", is_flag=True, help="Succeed quietly if the topic exists.")
@timeout_option
def topics_create(
    bootstrap_server: str,
    topic: str,
    partitions: int | None,
    replication_factor: int | None,
    configs: tuple[str, ...],
    if_not_exists: bool,
    timeout: float,
) -> None:
    """Create a topic."""
    from confluent_kafka.admin import NewTopic

    overrides = {}
    for item in configs:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--config")
        overrides[name] = value
    if if_not_exists and topic in _topic_metadata(bootstrap_server, timeout).topics:
        return
    new = NewTopic(
        topic,
        num_partitions=partitions if partitions is not None else -1,
        replication_factor=replication_factor if replication_factor is not None else -1,
        config=overrides,
    )
    admin = _admin(bootstrap_server)
    _wait(admin.create_topics([new], request_timeout=timeout), timeout, "Created topic {name}.")


@topics.command("list")
@bootstrap_option
@timeout_option
def topics_list(bootstrap_server: str, timeout: float) -> None:
    """List topic names, one per line."""
    for name in sorted(_topic_metadata(bootstrap_server, timeout).topics):
        if not name.startswith("__"):
            click.echo(name)


@topics.command("describe")
@bootstrap_option
@click.option("--topic", default=None, help="Only this topic [default: all].")
@timeout_option
def topics_describe(bootstrap_server: str, topic: str | None, timeout: float) -> None:
    """Partitions, leaders and replicas of topics."""
    metadata = _topic_metadata(bootstrap_server, timeout)
    names = [topic] if topic else sorted(n for n in metadata.topics if not n.startswith("__"))
    for name in names:
        entry = metadata.topics.get(name)
        if entry is None or entry.error is not None:
            raise TidepoolError(f"Topic '{name}' does not exist as expected", 1)
        partitions = sorted(entry.partitions.values(), key=lambda p: p.id)
        replication = len(partitions[0].replicas) if partitions else 0
        click.echo(f"Topic: {name}\tPartitionCount: {len(partitions)}\tReplicationFactor: {replication}")
        for p in partitions:
            replicas = ",".join(str(r) for r in p.replicas)
            isr = ",".join(str(r) for r in p.isrs)
            click.echo(f"\tTopic: {name}\tPartition: {p.id}\tLeader: {p.leader}\tReplicas: {replicas}\tIsr: {isr}")


@topics.command("delete")
@bootstrap_option
@click.option("--topic", required=True)
@timeout_option
def topics_delete(bootstrap_server: str, topic: str, timeout: float) -> None:
    """Delete a topic and its data."""
    if topic not in _topic_metadata(bootstrap_server, timeout).topics:
        raise TidepoolError(f"Topic '{topic}' does not exist as expected", 1)
    admin = _admin(bootstrap_server)
    _wait(admin.delete_topics([topic], request_timeout=timeout), timeout, None)


def _properties(items: tuple[str, ...]) -> dict[str, str]:
    result = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--property")
        result[name] = value
    return result


@click.command("console-producer")
@bootstrap_option
@click.option("--topic", required=True)
@click.option(
    "--property",
    "properties",
    multiple=True,
    metavar="NAME=VALUE",
    help="parse.key=true and key.separator=SEP (default tab), as kafka-console-producer.",
)
@click.option(
    "--producer-property",
    "producer_properties",
    multiple=True,
    metavar="NAME=VALUE",
    help="librdkafka producer setting, e.g. acks=1 or compression.type=zstd.",
)
@click.argument("more_properties", nargs=-1, metavar="[NAME=VALUE]...")
def console_producer(
    bootstrap_server: str,
    topic: str,
    properties: tuple[str, ...],
    producer_properties: tuple[str, ...],
    more_properties: tuple[str, ...],
) -> None:
    """Send each line of standard input as one message.

    Properties may follow one `--property` as bare NAME=VALUE words: `--property parse.key=true key.separator=:`.
    """
    from confluent_kafka import Producer

    props = _properties(properties + more_properties)
    parse_key = props.get("parse.key", "false").lower() == "true"
    separator = props.get("key.separator", "\t")
    config = {"bootstrap.servers": bootstrap_server, "acks": "all", "linger.ms": 5, "log_level": 3}
    config.update(_properties(producer_properties))
    producer = Producer(config)
    errors: list[str] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(err.str())

    for raw in sys.stdin.buffer:
        line = raw.rstrip(b"\r\n")
        key: bytes | None = None
        if parse_key:
            sep = separator.encode()
            if sep not in line:
                raise TidepoolError(f"No key separator found on line: {line.decode(errors='replace')}", 1)
            key, line = line.split(sep, 1)
        while True:
            try:
                producer.produce(topic, value=line, key=key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(30)
    if remaining or errors:
        raise TidepoolError(f"{remaining + len(errors)} message(s) not delivered: {(errors or ['timed out'])[0]}", 1)


@click.command("console-consumer")
@bootstrap_option
@click.option("--topic", required=True)
@click.option("--from-beginning", is_flag=True, help="Start at the earliest offset, not the end.")
@click.option("--max-messages", type=click.IntRange(1), default=None, help="Exit after this many messages.")
@click.option("--group", default=None, help="Consume in this consumer group (offsets are committed).")
@click.option("--partition", type=click.IntRange(0), default=None, help="Only this partition.")
@click.option("--timeout-ms", type=click.IntRange(1), default=None, help="Exit if no message arrives for this long.")
@click.option(
    "--property",
    "properties",
    multiple=True,
    metavar="NAME=VALUE",
    help="print.key=true, print.offset=true, print.partition=true, key.separator=SEP.",
)
@click.argument("more_properties", nargs=-1, metavar="[NAME=VALUE]...")
def console_consumer(
    bootstrap_server: str,
    topic: str,
    from_beginning: bool,
    max_messages: int | None,
    group: str | None,
    partition: int | None,
    timeout_ms: int | None,
    properties: tuple[str, ...],
    more_properties: tuple[str, ...],
) -> None:
    """Print messages of a topic to standard output, one per line.

    Properties may follow one `--property` as bare NAME=VALUE words: `--property print.key=true key.separator=:`.
    """
    import time

    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, TopicPartition

    props = _properties(properties + more_properties)
    separator = props.get("key.separator", "\t")
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_server,
        "group.id": group or "tidepool-console-consumer",
        "enable.auto.commit": group is not None,
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "enable.partition.eof": False,
        "log_level": 3,
    }
    consumer = Consumer(config)
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    if group is None or partition is not None:
        metadata = consumer.list_topics(topic, timeout=30)
        entry = metadata.topics.get(topic)
        if entry is None or entry.error is not None:
            consumer.close()
            raise TidepoolError(f"topic {topic!r} is not available: {entry.error if entry else 'unknown'}", 1)
        ids = [partition] if partition is not None else sorted(entry.partitions)
        consumer.assign([TopicPartition(topic, p, start) for p in ids])
    else:
        consumer.subscribe([topic])
    count = 0
    last_message = time.monotonic()
    out = sys.stdout.buffer
    try:
        while max_messages is None or count < max_messages:
            msg = consumer.poll(0.2)
            if msg is None:
                if timeout_ms is not None and (time.monotonic() - last_message) * 1000 >= timeout_ms:
                    break
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise TidepoolError(f"consume failed: {error.str()}", 1)
            last_message = time.monotonic()
            parts: list[bytes] = []
            if props.get("print.partition") == "true":
                parts.append(f"Partition:{msg.partition()}".encode())
            if props.get("print.offset") == "true":
                parts.append(f"Offset:{msg.offset()}".encode())
            if props.get("print.key") == "true":
                parts.append(msg.key() or b"" if msg.key() is not None else b"null")
            parts.append(msg.value() or b"" if msg.value() is not None else b"null")
            out.write(separator.encode().join(parts) + b"\n")
            out.flush()
            count += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
        click.echo(f"Processed a total of {count} messages", err=True)


# `tidepool groups` lives with the group coordinator (owned there); re-exported for the CLI map.
from tidepool.broker.groups.cli import groups  # noqa: E402, F401
