"""`tidepool broker`: run the Kafka-compatible broker in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click

from tidepool.errors import TidepoolError
from tidepool.netaddr import split_host_port


@click.command()
@click.option("--listen", default="127.0.0.1:9092", show_default=True, help="HOST:PORT to accept clients on.")
@click.option("--advertised-host", default=None, help="Host clients are told to connect to [default: listen host].")
@click.option("--advertised-port", type=int, default=None, help="Port clients are told [default: listen port].")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path("./tidepool-data/broker"),
    show_default=True,
    help="Where the log, topics and offsets live.",
)
@click.option("--node-id", type=int, default=1, show_default=True)
@click.option(
    "--partitions",
    "default_partitions",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Partitions of an auto-created topic (num.partitions).",
)
@click.option(
    "--auto-create/--no-auto-create",
    default=True,
    show_default=True,
    help="Create unknown topics on first use (auto.create.topics.enable).",
)
@click.option(
    "--retention-ms",
    type=int,
    default=7 * 24 * 3600 * 1000,
    show_default=True,
    help="Delete closed segments older than this; -1 keeps them forever.",
)
@click.option(
    "--retention-bytes",
    type=int,
    default=-1,
    show_default=True,
    help="Keep each partition under this many bytes (closed segments only); -1 is unlimited.",
)
@click.option(
    "--segment-bytes",
    type=click.IntRange(1024),
    default=1 << 30,
    show_default=True,
    help="Roll to a new segment at this size.",
)
@click.option(
    "--segment-ms",
    type=click.IntRange(1),
    default=7 * 24 * 3600 * 1000,
    show_default=True,
    help="Roll to a new segment after this age.",
)
@click.option(
    "--max-message-bytes",
    type=click.IntRange(1024),
    default=1048588,
    show_default=True,
    help="Largest record batch accepted.",
)
@click.option(
    "--fsync",
    type=click.Choice(["always", "interval", "never"]),
    default="interval",
    show_default=True,
    help="always: fsync before acknowledging; interval: every --fsync-interval-ms; never: leave it to the OS.",
)
@click.option("--fsync-interval-ms", type=click.IntRange(10), default=1000, show_default=True)
@click.option("--retention-check-interval-ms", type=click.IntRange(100), default=300_000, show_default=True)
@click.option(
    "--group-initial-rebalance-delay-ms",
    type=click.IntRange(0),
    default=None,
    help="How long a new consumer group waits for more members before its first rebalance "
    "(group.initial.rebalance.delay.ms) [default: the group coordinator's].",
)
def broker(
    listen: str,
    advertised_host: str | None,
    advertised_port: int | None,
    data_dir: Path,
    node_id: int,
    default_partitions: int,
    auto_create: bool,
    retention_ms: int,
    retention_bytes: int,
    segment_bytes: int,
    segment_ms: int,
    max_message_bytes: int,
    fsync: str,
    fsync_interval_ms: int,
    retention_check_interval_ms: int,
    group_initial_rebalance_delay_ms: int | None,
) -> None:
    """Run the Kafka-compatible broker (speaks the Kafka wire protocol; stores a durable segmented log)."""
    from tidepool.broker.config import BrokerConfig
    from tidepool.broker.log.partition import LogConfig

    try:
        host, port = split_host_port(listen, default_host="0.0.0.0")  # `:9092` is every interface, as in Kafka
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    config = BrokerConfig(
        data_dir=data_dir,
        host=host,
        port=port,
        advertised_host=advertised_host,
        advertised_port=advertised_port,
        node_id=node_id,
        default_partitions=default_partitions,
        auto_create_topics=auto_create,
        log=LogConfig(
            segment_bytes=segment_bytes,
            roll_ms=segment_ms,
            retention_ms=retention_ms,
            retention_bytes=retention_bytes,
            max_message_bytes=max_message_bytes,
        ),
        fsync=fsync,
        fsync_interval_ms=fsync_interval_ms,
        retention_check_interval_ms=retention_check_interval_ms,
        group_initial_rebalance_delay_ms=group_initial_rebalance_delay_ms,
    )
    _raise_open_file_limit()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    from tidepool.broker.log.manager import DataDirLocked

    try:
        asyncio.run(_run(config))
    except DataDirLocked as exc:
        raise TidepoolError(f"cannot start the broker: {exc}", 2) from exc
    except OSError as exc:
        raise TidepoolError(f"cannot start the broker on {listen}: {exc.strerror or exc}", 2) from exc


def _raise_open_file_limit() -> None:
    """Every segment keeps its file open, as in Kafka: lift the soft limit on open files to the hard one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))


async def _run(config: object) -> None:
    from tidepool.broker.config import BrokerConfig
    from tidepool.broker.server import BrokerServer

    assert isinstance(config, BrokerConfig)
    server = BrokerServer(config)
    try:
        await server.start()
    except BaseException:
        await server.stop()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(server.serve_forever())
    await stop.wait()
    serving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await serving
    await server.stop()
