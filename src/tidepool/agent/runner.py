"""Inputs → per-output buffers → outputs: batching, flushing, retries, back-pressure and delivery tracking.

Each input hands over groups of metrics (one Kafka poll is one group). Every output keeps a FIFO buffer and a
queue of group markers (the buffer position where the group ends); when a write succeeds the output's written
count moves on and every group whose end it passed is done for that output. A group done for every output is
delivered: its input may then commit. Buffers are FIFO, so groups are delivered in order.

Differences from Telegraf, on purpose: a full buffer pauses the inputs instead of dropping the oldest metrics,
and a failed write is retried with exponential backoff (capped at flush_interval, at least 1 s) instead of at the
next flush.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from tidepool.agent.config import AgentConfig, AgentSettings, PluginTable, unused_fields_error
from tidepool.agent.filters import MetricFilter
from tidepool.agent.options import ConfigError, PluginOptions
from tidepool.agent.plugins import Input, Output, WriteError
from tidepool.lineproto import Metric
from tidepool.logs import get_logger

log = get_logger("agent")

_INPUT_COMMON = (
    "alias",
    "interval",
    "precision",
    "collection_jitter",
    "collection_offset",
    "log_level",
    "startup_error_behavior",
    "data_format",
)
_OUTPUT_COMMON = ("alias", "log_level", "data_format")


class DeliveryGroup:
    """Metrics of one input hand-over; `callback` runs once every output has accepted them."""

    __slots__ = ("callback", "pending")

    def __init__(self, pending: int, callback: Callable[[], None] | None) -> None:
        self.pending = pending
        self.callback = callback

    def done(self) -> None:
        self.pending -= 1
        if self.pending == 0 and self.callback is not None:
            self.callback()


@dataclass
class Counters:
    values: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, amount: float = 1) -> None:
        self.values[name] = self.values.get(name, 0) + amount

    def set(self, name: str, value: float) -> None:
        self.values[name] = value


@dataclass
class RunningInput:
    plugin_id: str
    input: Input
    name_override: str = ""
    name_prefix: str = ""
    name_suffix: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    filter: MetricFilter | None = None
    counters: Counters = field(default_factory=Counters)


class RunningOutput:
    def __init__(
        self,
        plugin_id: str,
        output: Output,
        *,
        batch_size: int,
        buffer_limit: int,
        flush_interval: float,
        flush_jitter: float,
        metric_filter: MetricFilter | None = None,
        name_override: str = "",
        name_prefix: str = "",
        name_suffix: str = "",
    ) -> None:
        self.plugin_id = plugin_id
        self.output = output
        self.batch_size = batch_size
        self.buffer_limit = buffer_limit
        self.flush_interval = flush_interval
        self.flush_jitter = flush_jitter
        self.filter = metric_filter
        self.renames = bool(name_override or name_prefix or name_suffix)
        self.name_override, self.name_prefix, self.name_suffix = name_override, name_prefix, name_suffix
        self.buffer: deque[Metric] = deque()
        self.markers: deque[tuple[int, DeliveryGroup]] = deque()
        self.appended = 0
        self.written = 0
        self.wake = asyncio.Event()
        self.counters = Counters()
        self.failing = False

    def add(self, metrics: list[Metric], group: DeliveryGroup, copy: bool) -> None:
        if self.filter is not None or self.renames:
            kept: list[Metric] = []
            for metric in metrics:
                out: Metric | None = metric
                if self.filter is not None:
                    out = self.filter.apply(metric, copy)
                if out is not None and self.renames:
                    name = self.name_override or out.name
                    out = Metric(
                        self.name_prefix + name + self.name_suffix, out.tags, out.fields, out.time, out.unsigned
                    )
                if out is not None:
                    kept.append(out)
                else:
                    self.counters.add("metrics_filtered")
            metrics = kept
        self.buffer.extend(metrics)
        self.appended += len(metrics)
        self.markers.append((self.appended, group))
        self._settle()
        if len(self.buffer) >= self.batch_size and not self.failing:
            self.wake.set()

    def _settle(self) -> None:
        markers = self.markers
        while markers and markers[0][0] <= self.written:
            markers.popleft()[1].done()

    async def write_batch(self) -> bool:
        """Write the oldest batch; False (batch kept) if the output refused it."""
        count = min(self.batch_size, len(self.buffer))
        batch = [self.buffer[i] for i in range(count)]
        try:
            await self.output.write(batch)
        except WriteError as exc:
            self.counters.add("errors")
            log.error("Error writing to %s: %s", self.plugin_id, exc)
            self.failing = True
            return False
        except Exception as exc:  # a plugin bug must not kill the agent; the batch is kept
            self.counters.add("errors")
            log.exception("Error writing to %s: %s", self.plugin_id, exc)
            self.failing = True
            return False
        if self.failing:
            log.info("%s: writing again after errors", self.plugin_id)
        self.failing = False
        for _ in range(count):
            self.buffer.popleft()
        self.written += count
        self.counters.add("metrics_written", count)
        self._settle()
        return True

    async def flush(self) -> bool:
        """Write every buffered batch, oldest first; stop at the first failure."""
        while self.buffer:
            if not await self.write_batch():
                return False
        self._settle()
        return True


@dataclass
class BuiltAgent:
    settings: AgentSettings
    global_tags: dict[str, str]
    inputs: list[RunningInput]
    outputs: list[RunningOutput]


def _check_unused(opts: PluginOptions, table: PluginTable) -> None:
    unused = opts.unused()
    if unused:
        raise unused_fields_error(table.source, table.line, table.full_name, unused)


def build(
    config: AgentConfig,
    input_filter: list[str] | None = None,
    output_filter: list[str] | None = None,
    with_outputs: bool = True,
) -> BuiltAgent:
    """Turn the parsed tables into running plugins, failing on unknown plugins and unused options."""
    from tidepool.agent.plugins.inputs import INPUTS, PARSER_INPUTS
    from tidepool.agent.plugins.outputs import OUTPUTS
    from tidepool.agent.plugins.parsers import PARSERS
    from tidepool.agent.plugins.serializers import SERIALIZERS

    settings = config.agent
    global_tags = dict(config.global_tags)
    if not settings.omit_hostname:
        global_tags.setdefault("host", settings.resolved_hostname())
    inputs: list[RunningInput] = []
    for table in config.inputs:
        if input_filter and table.name not in input_filter:
            continue
        opts = PluginOptions({"interval": settings.interval, **table.table}, table.full_name)
        factory = INPUTS.get(table.name)
        parser = None
        if table.name in PARSER_INPUTS:
            parser = PARSERS.get(opts.string("data_format", "influx"))(opts, table.name)
        alias = opts.string("alias")
        plugin_id = f"{table.full_name}::{alias}" if alias else table.full_name
        running = RunningInput(
            plugin_id,
            factory(opts, parser, plugin_id),
            name_override=opts.string("name_override"),
            name_prefix=opts.string("name_prefix"),
            name_suffix=opts.string("name_suffix"),
            tags=opts.string_table("tags"),
            filter=MetricFilter.from_options(opts),
        )
        opts.accept(*_INPUT_COMMON)
        _check_unused(opts, table)
        inputs.append(running)
    outputs: list[RunningOutput] = []
    for table in config.outputs:  # built (and so checked) even for --test, which then uses none
        if output_filter and table.name not in output_filter:
            continue
        opts = PluginOptions(table.table, table.full_name)
        output_factory = OUTPUTS.get(table.name)
        serializer = SERIALIZERS.get(opts.string("data_format", "influx"))(opts)
        alias = opts.string("alias")
        plugin_id = f"{table.full_name}::{alias}" if alias else table.full_name
        running_output = RunningOutput(
            plugin_id,
            output_factory(opts, serializer),
            batch_size=opts.integer("metric_batch_size", settings.metric_batch_size),
            buffer_limit=opts.integer("metric_buffer_limit", settings.metric_buffer_limit),
            flush_interval=opts.duration("flush_interval", settings.flush_interval),
            flush_jitter=opts.duration("flush_jitter", settings.flush_jitter),
            metric_filter=MetricFilter.from_options(opts),
            name_override=opts.string("name_override"),
            name_prefix=opts.string("name_prefix"),
            name_suffix=opts.string("name_suffix"),
        )
        opts.accept(*_OUTPUT_COMMON)
        _check_unused(opts, table)
        outputs.append(running_output)
    if not inputs:
        raise ConfigError("no inputs found, probably invalid config file provided")
    if not with_outputs:
        return BuiltAgent(settings, global_tags, inputs, [])
    if not outputs:
        raise ConfigError("no outputs found, probably invalid config file provided")
    return BuiltAgent(settings, global_tags, inputs, outputs)


class InputAccumulator:
    """The `Accumulator` one input sees: applies the input's and the agent's tags and filters, then hands over."""

    def __init__(self, agent: Agent, running: RunningInput) -> None:
        self.agent = agent
        self.running = running
        running_tags = list(running.tags.items())
        self._tags = running_tags + [kv for kv in agent.built.global_tags.items() if kv[0] not in running.tags]
        self._rename = bool(running.name_override or running.name_prefix or running.name_suffix)

    def add_group(self, metrics: list[Metric], on_delivered: Callable[[], None] | None = None) -> None:
        running = self.running
        tags = self._tags
        if self._rename or running.filter is not None:
            kept: list[Metric] = []
            for metric in metrics:
                if self._rename:
                    metric.name = running.name_prefix + (running.name_override or metric.name) + running.name_suffix
                out = metric if running.filter is None else running.filter.apply(metric, copy=False)
                if out is not None and out.fields:
                    kept.append(out)
            running.counters.add("metrics_filtered", len(metrics) - len(kept))
            metrics = kept
        else:
            metrics = [m for m in metrics if m.fields]
        for metric in metrics:
            metric_tags = metric.tags
            for key, value in tags:
                if key not in metric_tags:
                    metric_tags[key] = value
        running.counters.add("metrics_gathered", len(metrics))
        self.agent.submit(metrics, on_delivered)

    def has_room(self) -> bool:
        return self.agent.has_room()

    def count(self, counter: str, amount: int = 1) -> None:
        if amount:
            self.running.counters.add(counter, amount)

    def set_gauge(self, gauge: str, value: float) -> None:
        self.running.counters.set(gauge, value)

    def agent_stats(self) -> list[tuple[str, dict[str, str], dict[str, float]]]:
        return self.agent.snapshot()


class Agent:
    """One configured agent: start inputs, run the output loops, stop with a final flush."""

    def __init__(self, built: BuiltAgent, *, on_metrics: Callable[[list[Metric]], None] | None = None) -> None:
        self.built = built
        self.on_metrics = on_metrics  # --test: print instead of buffering; nothing is ever delivered
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = asyncio.Event()
        self.accepting = True
        self._tasks: list[asyncio.Task[None]] = []
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()

    def has_room(self) -> bool:
        in_flight = self._in_flight  # handed over by inputs, not yet in the buffers
        return all(len(o.buffer) + in_flight < o.buffer_limit for o in self.built.outputs)

    def submit(self, metrics: list[Metric], on_delivered: Callable[[], None] | None) -> None:
        """Thread-safe hand-over from an input thread to the loop."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        with self._in_flight_lock:
            self._in_flight += len(metrics)
        try:
            loop.call_soon_threadsafe(self._accept, metrics, on_delivered)
        except RuntimeError:  # loop closed during shutdown: not delivered, so not committed
            with self._in_flight_lock:
                self._in_flight -= len(metrics)

    def _accept(self, metrics: list[Metric], on_delivered: Callable[[], None] | None) -> None:
        with self._in_flight_lock:
            self._in_flight -= len(metrics)
        if not self.accepting:
            return
        if self.on_metrics is not None:
            self.on_metrics(metrics)
            return
        outputs = self.built.outputs
        group = DeliveryGroup(len(outputs), on_delivered)
        copy = len(outputs) > 1
        for output in outputs:
            output.add(metrics, group, copy)

    async def _output_loop(self, output: RunningOutput) -> None:
        backoff = 0.0
        cap = max(1.0, output.flush_interval)
        while not self.stopping.is_set():
            delay = backoff if backoff else output.flush_interval + random.uniform(0, output.flush_jitter)
            waiter = asyncio.ensure_future(output.wake.wait())
            stopper = asyncio.ensure_future(self.stopping.wait())
            await asyncio.wait({waiter, stopper}, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
            output.wake.clear()
            if self.stopping.is_set():
                break
            backoff = 0.0 if await output.flush() else min(cap, max(0.1, backoff * 2))

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        for output in self.built.outputs:
            await output.output.connect()
        for running in self.built.inputs:
            running.input.start(InputAccumulator(self, running))
        for output in self.built.outputs:
            self._tasks.append(asyncio.create_task(self._output_loop(output)))

    async def stop(self, final_flush: bool = True) -> bool:
        """Stop taking metrics, flush once more, let inputs commit what was delivered; True if all was written."""
        self.accepting = False
        self.stopping.set()
        for task in self._tasks:
            await task
        self._tasks.clear()
        await asyncio.sleep(0)  # hand-overs already scheduled are dropped by `accepting`
        ok = True
        if final_flush:
            for output in self.built.outputs:
                if not await output.flush():
                    ok = False
        await asyncio.get_running_loop().run_in_executor(None, self._stop_inputs)
        for output in self.built.outputs:
            await output.output.close()
        return ok

    def _stop_inputs(self) -> None:
        for running in self.built.inputs:
            running.input.stop()

    def snapshot(self) -> list[tuple[str, dict[str, str], dict[str, float]]]:
        """(measurement, tags, fields) of the agent's counters, in the shape of Telegraf's inputs.internal."""
        rows: list[tuple[str, dict[str, str], dict[str, float]]] = []
        totals = {"metrics_gathered": 0.0, "metrics_written": 0.0, "metrics_filtered": 0.0, "errors": 0.0}
        for running in self.built.inputs:
            values = dict(running.counters.values)
            totals["metrics_gathered"] += values.get("metrics_gathered", 0)
            totals["metrics_filtered"] += values.get("metrics_filtered", 0)
            rows.append(("internal_gather", _plugin_tags("input", running.plugin_id), values))
        for output in self.built.outputs:
            values = dict(output.counters.values)
            values["buffer_size"] = len(output.buffer)
            values["buffer_limit"] = output.buffer_limit
            totals["metrics_written"] += values.get("metrics_written", 0)
            totals["errors"] += values.get("errors", 0)
            rows.append(("internal_write", _plugin_tags("output", output.plugin_id), values))
        rows.insert(0, ("internal_agent", {}, totals))
        return rows


def _plugin_tags(kind: str, plugin_id: str) -> dict[str, str]:
    """`inputs.kafka_consumer::sea` → {"input": "kafka_consumer", "alias": "sea"}, as Telegraf tags them."""
    name, _, alias = plugin_id.partition("::")
    tags = {kind: name.partition(".")[2]}
    if alias:
        tags["alias"] = alias
    return tags


def prometheus_text(agent: Agent) -> str:
    """The counters as Prometheus text exposition, one metric family per counter name."""
    families: dict[str, list[str]] = {}
    for measurement, tags, values in agent.snapshot():
        labels = ",".join(f'{k}="{v}"' for k, v in tags.items())
        for name, value in values.items():
            family = f"tidepool_agent_{measurement.removeprefix('internal_')}_{name}"
            if not labels and family.startswith("tidepool_agent_agent_"):
                family = family.replace("tidepool_agent_agent_", "tidepool_agent_", 1)
            text = str(int(value)) if float(value).is_integer() else repr(float(value))
            families.setdefault(family, []).append(f"{family}{{{labels}}} {text}")
    lines: list[str] = []
    for family, samples in sorted(families.items()):
        kind = "gauge" if family.endswith(("lag", "size", "limit", "messages")) else "counter"
        lines.append(f"# TYPE {family} {kind}")
        lines.extend(samples)
    return "\n".join(lines) + "\n"
