"""The one entry point, `tidepool`: a click group that dispatches to each component's own command.

Commands are registered here by name and loaded lazily, so `tidepool --help` stays fast and a component
that has not landed yet is simply not listed. Every component's command module must import its heavy
dependencies (pyarrow, datafusion, confluent_kafka) inside the command function, not at module top.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from typing import Any

import click

from tidepool import __version__
from tidepool.errors import TidepoolError
from tidepool.logs import LEVELS, setup_logging

# name → "module:attribute" of a click.Command; the order is the order of `tidepool --help`.
COMMANDS: dict[str, str] = {
    "up": "tidepool.pipeline.cli:up",
    "simulate": "tidepool.pipeline.cli:simulate",
    "broker": "tidepool.broker.cli:broker",
    "topics": "tidepool.broker.tools:topics",
    "groups": "tidepool.broker.tools:groups",
    "console-producer": "tidepool.broker.tools:console_producer",
    "console-consumer": "tidepool.broker.tools:console_consumer",
    "agent": "tidepool.agent.cli:agent",
    "db": "tidepool.db.cli:db",
    "sql": "tidepool.db.shell:sql",
}


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def available_commands() -> list[str]:
    """The commands whose component has landed in this installation."""
    return [name for name, target in COMMANDS.items() if _module_exists(target.partition(":")[0])]


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return available_commands()

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None or not _module_exists(target.partition(":")[0]):
            return None
        module_name, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute, None)
        return command if isinstance(command, click.Command) else None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="tidepool")
@click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    envvar="TIDEPOOL_LOG_LEVEL",
    help="How much the servers log (to stderr).",
)
@click.pass_context
def cli(ctx: click.Context, log_level: str) -> None:
    """tidepool: Kafka → Telegraf → CnosDB on one machine.

    Sensors publish to a Kafka-compatible broker, a Telegraf-compatible agent consumes and writes line
    protocol to a CnosDB-compatible database that answers SQL. `tidepool up` runs them all.
    """
    setup_logging(log_level)
    ctx.ensure_object(dict)
    ctx.obj["log_level"] = log_level


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI; failures become `error: …` and an exit status, never a traceback."""
    try:
        result = cli.main(args=argv, prog_name="tidepool", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except TidepoolError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # the last line of defence: report, don't dump a traceback on the user
        logging.getLogger("tidepool").debug("unexpected failure", exc_info=True)
        click.echo(f"error: unexpected {type(exc).__name__}: {exc} (run with --log-level debug for details)", err=True)
        sys.exit(1)
    if isinstance(result, int):
        sys.exit(result)
    return result


if __name__ == "__main__":
    main()
