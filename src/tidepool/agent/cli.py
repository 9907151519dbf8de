"""`tidepool agent`: Telegraf's command line over tidepool's agent (config files, --test, --once, signals)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from tidepool.errors import TidepoolError
from tidepool.logs import get_logger, setup_logging

log = get_logger("agent")


@dataclass
class RunOptions:
    configs: list[str]
    directories: list[str]
    input_filter: list[str]
    output_filter: list[str]
    test: bool
    test_wait: float
    once: bool
    metrics_listen: str
    watch_config: str = ""


def _config_files(opts: RunOptions) -> list[Path]:
    files = [Path(f) for f in opts.configs if not f.startswith(("http://", "https://"))]
    for directory in opts.directories:
        files.extend(sorted(Path(directory).rglob("*.conf")))
    return files


def _stamp(files: list[Path]) -> list[tuple[str, float, int]]:
    stamps = []
    for path in files:
        try:
            info = path.stat()
        except OSError:
            stamps.append((str(path), -1.0, -1))
            continue
        stamps.append((str(path), info.st_mtime, info.st_size))
    return stamps


async def _watch(opts: RunOptions, signals: asyncio.Queue[str]) -> None:
    """--watch-config: reload when a config file (or a directory's *.conf set) changes; polled every second."""
    seen = _stamp(_config_files(opts))
    while True:
        await asyncio.sleep(1.0)
        now = _stamp(_config_files(opts))
        if now != seen:
            seen = now
            log.info("config changed on disk, reloading")
            signals.put_nowait("reload")


def _split_filter(value: str) -> list[str]:
    return [part for part in value.split(":") if part]


def _load(opts: RunOptions, with_outputs: bool) -> Any:
    from tidepool.agent import config as config_module
    from tidepool.agent.runner import build

    config = config_module.load(opts.configs, opts.directories)
    return build(config, opts.input_filter, opts.output_filter, with_outputs=with_outputs)


async def _serve_metrics(listen: str, holder: dict[str, Any]) -> Any:
    from aiohttp import web

    from tidepool.agent.runner import prometheus_text

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text=prometheus_text(holder["agent"]), content_type="text/plain")

    host, _, port = listen.rpartition(":")
    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host or "127.0.0.1", int(port))
    await site.start()
    log.info("serving agent metrics on http://%s:%s/metrics", host or "127.0.0.1", port)
    return runner


async def _run_test(opts: RunOptions) -> int:
    from tidepool.agent.plugins.serializers.influx import InfluxSerializer
    from tidepool.agent.runner import Agent

    built = _load(opts, with_outputs=False)
    serializer = InfluxSerializer(sort_fields=True, uint_support=True)

    def show(metrics: list[Any]) -> None:
        for metric in metrics:
            try:
                line = serializer.serialize(metric).decode()
            except ValueError:
                continue
            sys.stdout.write("> " + line)
        sys.stdout.flush()

    agent = Agent(built, on_metrics=show)
    await agent.start()
    await asyncio.sleep(opts.test_wait)
    await agent.stop(final_flush=False)
    return 0


async def _run(opts: RunOptions) -> int:
    from tidepool.agent.runner import Agent

    loop = asyncio.get_running_loop()
    built = _load(opts, with_outputs=True)
    holder: dict[str, Any] = {}
    metrics_runner = None
    signals: asyncio.Queue[str] = asyncio.Queue()
    if not opts.once:
        for signum, name in ((signal.SIGTERM, "stop"), (signal.SIGINT, "stop"), (signal.SIGHUP, "reload")):
            loop.add_signal_handler(signum, signals.put_nowait, name)
    watcher = asyncio.create_task(_watch(opts, signals)) if opts.watch_config and not opts.once else None
    while True:
        agent = Agent(built)
        holder["agent"] = agent
        await agent.start()
        if opts.metrics_listen and metrics_runner is None:
            metrics_runner = await _serve_metrics(opts.metrics_listen, holder)
        log.info(
            "agent started: %d input(s), %d output(s), flush_interval %gs, metric_batch_size %d",
            len(built.inputs),
            len(built.outputs),
            built.settings.flush_interval,
            built.settings.metric_batch_size,
        )
        if opts.once:
            await asyncio.sleep(opts.test_wait)
            ok = await agent.stop()
            if metrics_runner is not None:
                await metrics_runner.cleanup()
            return 0 if ok else 1
        while True:
            reason = await signals.get()
            if reason == "stop":
                break
            try:
                built = _load(opts, with_outputs=True)  # checked before the running agent is touched
            except Exception as exc:
                log.error("reloading config failed, keeping the running one: %s", exc)
                continue
            break
        log.info("%s: stopping inputs, flushing outputs", "shutting down" if reason == "stop" else "reloading config")
        await agent.stop()
        if reason == "stop":
            if watcher is not None:
                watcher.cancel()
            if metrics_runner is not None:
                await metrics_runner.cleanup()
            log.info("agent stopped")
            return 0


def _log_to_file(path: str) -> None:
    """[agent] logfile: append the same lines to a file, besides stderr."""
    root = logging.getLogger()
    try:
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise TidepoolError(f"cannot open logfile {path}: {exc.strerror}", 1) from None
    if root.handlers:
        handler.setFormatter(root.handlers[0].formatter)
    root.addHandler(handler)


@click.command("agent", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "-config", "configs", multiple=True, metavar="FILE", help="Telegraf configuration file (repeatable)."
)
@click.option(
    "--config-directory",
    "-config-directory",
    "directories",
    multiple=True,
    metavar="DIR",
    help="Directory of *.conf files to merge (repeatable).",
)
@click.option("--test", "-test", is_flag=True, help="Gather, print metrics as `> line` to stdout, write no outputs.")
@click.option(
    "--test-wait",
    "-test-wait",
    default=0.0,
    type=float,
    metavar="SECONDS",
    help="With --test or --once: how long service inputs (kafka_consumer) run.",
)
@click.option("--once", "-once", is_flag=True, help="Gather once (for --test-wait seconds), flush outputs, exit.")
@click.option("--debug", "-debug", is_flag=True, help="Log debug messages.")
@click.option("--quiet", "-quiet", is_flag=True, help="Log errors only.")
@click.option("--input-filter", "-input-filter", default="", metavar="A:B", help="Run only these inputs.")
@click.option("--output-filter", "-output-filter", default="", metavar="A:B", help="Run only these outputs.")
@click.option(
    "--watch-config",
    "-watch-config",
    type=click.Choice(["notify", "poll"]),
    default=None,
    help="Reload when a config file changes (both modes poll once a second).",
)
@click.option("--pidfile", "-pidfile", default="", metavar="FILE", help="Write the process id to FILE.")
@click.option(
    "--metrics-listen",
    default="",
    metavar="HOST:PORT",
    help="Serve the agent's counters (Prometheus text) on http://HOST:PORT/metrics.",
)
def agent(
    configs: tuple[str, ...],
    directories: tuple[str, ...],
    test: bool,
    test_wait: float,
    once: bool,
    debug: bool,
    quiet: bool,
    input_filter: str,
    output_filter: str,
    watch_config: str | None,
    pidfile: str,
    metrics_listen: str,
) -> None:
    """Telegraf-compatible agent: Kafka (or any configured input) → line protocol over HTTP.

    Reads Telegraf's TOML configuration unchanged, e.g. the tutorial's kafka_consumer → outputs.http file.
    """
    from tidepool.agent.options import ConfigError

    if debug:
        setup_logging("debug")
    elif quiet:
        setup_logging("error")
    opts = RunOptions(
        list(configs),
        list(directories),
        _split_filter(input_filter),
        _split_filter(output_filter),
        test,
        test_wait,
        once,
        metrics_listen,
        watch_config or "",
    )
    try:
        from tidepool.agent import config as config_module

        probe = config_module.load(opts.configs, opts.directories)
        if not (debug or quiet) and (probe.agent.debug or probe.agent.quiet):
            setup_logging("debug" if probe.agent.debug else "error")
        if probe.agent.logfile:
            _log_to_file(probe.agent.logfile)
        # Buffered metrics hold no reference cycles, but thousands of live dicts make the cyclic collector rescan
        # them on nearly every poll; collecting less often cut the per-message CPU time by more than half.
        gc.set_threshold(100_000, 50, 100)
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        if pidfile:
            Path(pidfile).write_text(f"{os.getpid()}\n")
        code = asyncio.run(_run_test(opts) if test else _run(opts))
    except ConfigError as exc:
        raise TidepoolError(str(exc), 1) from None
    finally:
        if pidfile:
            Path(pidfile).unlink(missing_ok=True)
    if code:
        raise TidepoolError("some metrics could not be written", code)
