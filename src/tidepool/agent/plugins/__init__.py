"""The four plugin interfaces, as small as Telegraf's, and the registry each kind keeps by Telegraf's name.

An input starts and stops and hands metrics to an `Accumulator`; a parser turns bytes into metrics; a serializer
turns metrics into bytes; an output writes a batch. The runner knows these interfaces and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from tidepool.agent.options import ConfigError, PluginOptions
from tidepool.lineproto import Metric

DeliveryCallback = Callable[[], None]


class Parser(Protocol):
    def parse(self, data: bytes) -> list[Metric]:
        """Every metric in one payload; raise ParseError (never anything else) for bad input."""
        ...


class ParseError(ValueError):
    """A payload the parser refuses; the message says why, as Telegraf's parsers do."""


class Serializer(Protocol):
    def serialize(self, metric: Metric) -> bytes: ...

    def serialize_batch(self, metrics: list[Metric]) -> bytes: ...


class Accumulator(Protocol):
    """What an input sees of the agent. Every method may be called from any thread."""

    def add_group(self, metrics: list[Metric], on_delivered: DeliveryCallback | None = None) -> None:
        """Hand over metrics; `on_delivered` runs (on the agent's loop) once every output has accepted them all."""
        ...

    def has_room(self) -> bool:
        """False while the outputs' buffers are at metric_buffer_limit: inputs should pause, not drop."""
        ...

    def count(self, counter: str, amount: int = 1) -> None:
        """Add to one of the input's internal counters (messages_received, parse_errors, …)."""
        ...

    def set_gauge(self, gauge: str, value: float) -> None: ...

    def agent_stats(self) -> list[tuple[str, dict[str, str], dict[str, float]]]:
        """(measurement, tags, fields) of the agent's counters, as Telegraf's inputs.internal reports them."""
        ...


class Input(Protocol):
    def start(self, acc: Accumulator) -> None: ...

    def stop(self) -> None:
        """Stop reading; deliveries already notified are committed before this returns."""
        ...


class Output(Protocol):
    async def connect(self) -> None: ...

    async def write(self, metrics: list[Metric]) -> None:
        """Write one batch; raise WriteError to keep the batch and retry it later."""
        ...

    async def close(self) -> None: ...


class WriteError(Exception):
    """A failed write: the batch stays buffered and is retried."""


P = TypeVar("P")


class Registry(Generic[P]):
    """Plugin factories of one kind, keyed by the name used in the TOML (`[[inputs.kafka_consumer]]`)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.factories: dict[str, P] = {}

    def add(self, name: str) -> Callable[[P], P]:
        def register(factory: P) -> P:
            self.factories[name] = factory
            return factory

        return register

    def get(self, name: str) -> P:
        try:
            return self.factories[name]
        except KeyError:
            raise ConfigError(f"undefined but requested {self.kind.rstrip('s')}: {name}") from None


ParserFactory = Callable[[PluginOptions, str], Parser]  # (options of the input's table, default metric name)
SerializerFactory = Callable[[PluginOptions], Serializer]
