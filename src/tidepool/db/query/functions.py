"""CnosDB aggregate functions that DataFusion lacks, as DataFusion user-defined aggregates.

`mode(x)`: the most frequent non-null value (the smallest of equally frequent ones). `increase(time, x)`:
Prometheus-style counter increase — the sum of rises between consecutive values in time order, where a fall is a
counter reset that counts the new value whole. Both run in Python per group, so they suit modest groups; the
common aggregates stay DataFusion's own.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from datafusion import Accumulator, udaf

if TYPE_CHECKING:
    from datafusion import SessionContext


def register(ctx: SessionContext) -> None:
    ctx.register_udaf(
        udaf(_Mode, [pa.float64()], pa.float64(), [pa.list_(pa.float64())], "immutable", name="mode")
    )  # fmt: skip
    ctx.register_udaf(
        udaf(
            _Increase,
            [pa.timestamp("ns"), pa.float64()],
            pa.float64(),
            [pa.list_(pa.int64()), pa.list_(pa.float64())],
            "immutable",
            name="increase",
        )
    )


class _Mode(Accumulator):
    def __init__(self) -> None:
        self.values: list[pa.Array] = []

    def update(self, values: pa.Array) -> None:
        self.values.append(values.drop_null())

    def merge(self, states: list[pa.Array]) -> None:
        for items in states[0].to_pylist():
            self.values.append(pa.array(items or [], pa.float64()))

    def state(self) -> list[pa.Scalar]:
        return [pa.scalar(self._all().to_pylist(), pa.list_(pa.float64()))]

    def evaluate(self) -> pa.Scalar:
        values = self._all()
        if len(values) == 0:
            return pa.scalar(None, pa.float64())
        counts = pc.value_counts(values)
        best = pc.max(counts.field("counts")).as_py()
        winners = pc.filter(counts.field("values"), pc.equal(counts.field("counts"), best))
        return pa.scalar(pc.min(winners).as_py(), pa.float64())

    def _all(self) -> pa.Array:
        return (
            pa.concat_arrays([v.cast(pa.float64()) for v in self.values]) if self.values else pa.array([], pa.float64())
        )


class _Increase(Accumulator):
    def __init__(self) -> None:
        self.times: list[pa.Array] = []
        self.values: list[pa.Array] = []

    def update(self, times: pa.Array, values: pa.Array) -> None:
        keep = pc.and_(pc.is_valid(times), pc.is_valid(values))
        self.times.append(pc.filter(times, keep).cast(pa.int64()))
        self.values.append(pc.filter(values, keep).cast(pa.float64()))

    def merge(self, states: list[pa.Array]) -> None:
        for times, values in zip(states[0].to_pylist(), states[1].to_pylist(), strict=True):
            self.times.append(pa.array(times or [], pa.int64()))
            self.values.append(pa.array(values or [], pa.float64()))

    def state(self) -> list[pa.Scalar]:
        times, values = self._all()
        return [
            pa.scalar(times.to_pylist(), pa.list_(pa.int64())),
            pa.scalar(values.to_pylist(), pa.list_(pa.float64())),
        ]

    def evaluate(self) -> pa.Scalar:
        times, values = self._all()
        if len(values) < 2:
            return pa.scalar(None if len(values) == 0 else 0.0, pa.float64())
        ordered = pc.take(values, pc.sort_indices(times)).to_pylist()
        total = 0.0
        for previous, current in itertools.pairwise(ordered):
            total += current - previous if current >= previous else current
        return pa.scalar(total, pa.float64())

    def _all(self) -> tuple[pa.Array, pa.Array]:
        if not self.times:
            return pa.array([], pa.int64()), pa.array([], pa.float64())
        return pa.concat_arrays(self.times), pa.concat_arrays(self.values)
