"""`tidepool db`: open the engine, serve CnosDB's HTTP API on it until SIGTERM/SIGINT, then close cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click

from tidepool.errors import TidepoolError
from tidepool.logs import get_logger
from tidepool.netaddr import split_host_port

log = get_logger("db")


@click.command()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path("tidepool-data/db"),
    show_default=True,
    help="Where the catalog, WAL and Parquet files live.",
)
@click.option("--listen", default="127.0.0.1:8902", show_default=True, help="HOST:PORT of the HTTP API.")
@click.option(
    "--fsync",
    type=click.Choice(["per-write", "interval", "off"]),
    default="interval",
    show_default=True,
    help="WAL durability: fsync before each acknowledgement (group-committed), every 100 ms, or never.",
)
@click.option("--auth/--no-auth", default=False, show_default=True, help="Check passwords (CnosDB's auth_enabled).")
@click.option(
    "--max-body-bytes", type=click.IntRange(1024), default=None, help="Largest accepted write body [CnosDB: 160 MiB]."
)
@click.option(
    "--memtable-mb", type=click.IntRange(1), default=128, show_default=True, help="Flush to Parquet at this size."
)
def db(data_dir: Path, listen: str, fsync: str, auth: bool, max_body_bytes: int | None, memtable_mb: int) -> None:
    """Run the CnosDB-compatible time-series database (HTTP API, line protocol writes, SQL)."""
    from tidepool.db.engine import Engine, EngineConfig

    try:
        host, port = split_host_port(listen, default_host="127.0.0.1")
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        engine = Engine.open(data_dir, EngineConfig(fsync=fsync, memtable_bytes=memtable_mb * 1024 * 1024))
    except OSError as exc:
        raise TidepoolError(f"cannot open the database in {data_dir}: {exc}", 2) from exc
    for line in engine.recovery_report:
        log.warning("recovery: %s", line)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(_serve(engine, host, port, auth, max_body_bytes, data_dir))
    except OSError as exc:
        raise TidepoolError(f"cannot start the database on {listen}: {exc.strerror or exc}", 2) from exc
    finally:
        engine.close()
        log.info("closed: memtable flushed, WAL closed")


async def _serve(engine: object, host: str, port: int, auth: bool, max_body_bytes: int | None, data_dir: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        from tidepool.db.http import serve
    except ImportError:
        serve = None  # type: ignore[assignment]
    log.info("listening on http://%s:%d, data in %s", host, port, data_dir.resolve())
    if serve is None:
        await stop.wait()
        return
    serving = asyncio.create_task(
        serve(engine, host, port, auth_enabled=auth, max_body_bytes=max_body_bytes, data_dir=data_dir)  # type: ignore[arg-type]
    )
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    serving.cancel()
    stopping.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await serving  # re-raises a failure to start (e.g. the port is taken)
