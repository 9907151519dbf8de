"""inputs.internal — the agent's own counters as metrics, every `interval` (default: [agent] interval).

Measurements as Telegraf's: `internal_agent` (metrics_gathered, metrics_written, metrics_filtered, errors),
`internal_gather` per input (tag `input`, e.g. kafka_consumer: messages_received, parse_errors, metrics_gathered,
lag, undelivered_messages), `internal_write` per output (tag `output`: metrics_written, errors, buffer_size,
buffer_limit). All fields are integers. Options: `collect_memstats` and `collect_gostats` are accepted (Go runtime
statistics have no Python counterpart; `internal_memstats` is not written).
"""

from __future__ import annotations

import threading
import time

from tidepool.agent.options import PluginOptions
from tidepool.agent.plugins import Accumulator, Parser
from tidepool.agent.plugins.inputs import INPUTS
from tidepool.lineproto import Metric


class InternalInput:
    def __init__(self, interval: float) -> None:
        self.interval = max(0.01, interval)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, acc: Accumulator) -> None:
        self._thread = threading.Thread(target=self._run, args=(acc,), name="inputs.internal", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self, acc: Accumulator) -> None:
        while not self._stopping.wait(self.interval):
            now = time.time_ns()
            metrics = [
                Metric(name, dict(tags), {k: int(v) for k, v in fields.items()}, now)
                for name, tags, fields in acc.agent_stats()
            ]
            acc.add_group(metrics)


@INPUTS.add("internal")
def make_internal(opts: PluginOptions, parser: Parser | None, plugin_id: str) -> InternalInput:
    opts.accept("collect_memstats", "collect_gostats")
    return InternalInput(opts.duration("interval", 10.0))
