"""Click commands of the pipeline: `tidepool up` and `tidepool simulate`."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import click

from tidepool.errors import TidepoolError


def _load_config_file(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """`--config tidepool.toml`: its [up] table supplies defaults for every flag (the command line still wins)."""
    path = Path(value) if value else Path("tidepool.toml")
    if not path.exists():
        if value:
            raise click.BadParameter(f"{path} does not exist")
        return value
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise click.BadParameter(f"{path}: {exc}") from None
    section: dict[str, Any] = data.get("up", {})
    ctx.default_map = {key.replace("-", "_"): item for key, item in section.items()}
    return str(path)


@click.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    callback=_load_config_file,
    is_eager=True,
    expose_value=False,
    help="A tidepool.toml whose [up] table sets defaults for these flags (./tidepool.toml if present).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("tidepool-data"),
    show_default=True,
    help="One directory for every part's data and logs.",
)
@click.option(
    "--broker/--no-broker",
    default=True,
    show_default=True,
    help="Run tidepool's broker, or use the one at --brokers (e.g. Apache Kafka).",
)
@click.option("--brokers", default="127.0.0.1:9092", show_default=True, help="Kafka bootstrap servers.")
@click.option(
    "--db/--no-db",
    default=True,
    show_default=True,
    help="Run tidepool's database, or use the one at --db-url (e.g. CnosDB).",
)
@click.option("--db-url", default="http://127.0.0.1:8902", show_default=True, help="CnosDB HTTP API address.")
@click.option("--agent/--no-agent", default=True, show_default=True, help="Run the Telegraf-compatible agent.")
@click.option(
    "--agent-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A Telegraf config file for the agent (default: the tutorial's, written to the data dir).",
)
@click.option("--simulate/--no-simulate", default=False, show_default=True, help="Also run the sensor simulator.")
@click.option("--sensors", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=100.0,
    show_default=True,
    help="Simulator messages per second, all sensors together.",
)
@click.option("--topic", default="oceanic", show_default=True)
@click.option("--database", default="public", show_default=True)
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Partitions of the topic, if `up` creates it.",
)
@click.option("--status/--no-status", default=True, show_default=True, help="Show the live status line.")
@click.option("--run-for", type=click.FloatRange(min=0), default=None, help="Stop by itself after this many seconds.")
@click.pass_context
def up(ctx: click.Context, **kwargs: Any) -> None:
    """Run the whole pipeline: broker, database, agent (and the simulator with --simulate)."""
    from tidepool.pipeline.up import UpOptions, run

    log_level = (ctx.find_root().obj or {}).get("log_level", "info")
    ctx.exit(run(UpOptions(log_level=log_level, **kwargs)))


@click.command()
@click.option(
    "--bootstrap-server",
    "bootstrap_servers",
    default="127.0.0.1:9092",
    show_default=True,
    help="Kafka bootstrap servers (tidepool broker or Apache Kafka).",
)
@click.option("--topic", default="oceanic", show_default=True)
@click.option(
    "--sensors", type=click.IntRange(min=1), default=10, show_default=True, help="Number of simulated stations."
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Messages per second, all sensors together (0 = as fast as possible).",
)
@click.option("--count", type=click.IntRange(min=0), default=None, help="Stop after this many messages.")
@click.option("--duration", type=click.FloatRange(min=0), default=None, help="Stop after this many seconds.")
@click.option(
    "--station-tag/--no-station-tag",
    default=False,
    show_default=True,
    help='Add "station_id" (a tag with Telegraf\'s tag_keys = ["station_id"]).',
)
@click.option(
    "--event-time/--no-event-time",
    default=False,
    show_default=True,
    help='Add "time", the event time in ns (json_time_key = "time", json_time_format = "unix_ns").',
)
@click.option("--seed", type=int, default=None, help="Seed the random walks, for repeatable data.")
@click.option("--quiet", is_flag=True, help="No progress line; only the final summary.")
def simulate(**kwargs: Any) -> None:
    """Produce simulated ocean-sensor readings as JSON, like the tutorial's producer script."""
    from tidepool.pipeline.simulate import SimulateOptions, run

    quiet = kwargs.pop("quiet")
    result = run(SimulateOptions(progress=not quiet, **kwargs))
    click.echo(
        f"sent {result.sent}, acknowledged {result.acknowledged}, failed {result.failed} in {result.seconds:.1f}s"
    )
    if result.failed:
        raise TidepoolError(f"{result.failed} message(s) were not acknowledged by {kwargs['bootstrap_servers']}")
