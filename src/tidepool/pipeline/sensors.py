"""Simulated ocean sensors: each station's readings follow a bounded random walk, not uniform noise.

The message shape is the tutorial's, `{"pressure": …, "temperature": …, "visibility": …}`, optionally with a
`station_id` (a tag, with Telegraf's `tag_keys = ["station_id"]`) and `time` (event time in ns, with
`json_time_key = "time"` and `json_time_format = "unix_ns"`). Event times are strictly increasing per station, so
(station, time) identifies a reading and a replayed message lands on the same row instead of a new one.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import orjson

# (low, high, step): pressure in kPa-ish units as the tutorial (0–10), temperature and visibility 0–100.
_RANGES = {"pressure": (0.0, 10.0, 0.15), "temperature": (0.0, 100.0, 0.8), "visibility": (0.0, 100.0, 1.5)}


@dataclass
class Station:
    """One sensor station: its id, the current reading and the last event time it used."""

    station_id: str
    rng: random.Random
    values: dict[str, float] = field(default_factory=dict)
    last_time_ns: int = 0

    def __post_init__(self) -> None:
        for name, (low, high, _) in _RANGES.items():
            self.values[name] = self.rng.uniform(low + (high - low) * 0.3, high - (high - low) * 0.3)

    def step(self) -> dict[str, float]:
        """Advance the walk one step; values stay inside their range (reflected at the edges)."""
        for name, (low, high, size) in _RANGES.items():
            value = self.values[name] + self.rng.gauss(0.0, size)
            if value < low:
                value = 2 * low - value
            if value > high:
                value = 2 * high - value
            self.values[name] = min(high, max(low, value))
        return {name: round(value, 1) for name, value in self.values.items()}

    def event_time(self) -> int:
        now = time.time_ns()
        self.last_time_ns = max(now, self.last_time_ns + 1)
        return self.last_time_ns


class SensorFleet:
    """`count` stations, read round-robin; `message()` gives the next reading as JSON bytes and its key."""

    def __init__(self, count: int, *, station_tag: bool, event_time: bool, seed: int | None = None) -> None:
        if count < 1:
            raise ValueError("at least one sensor is needed")
        rng = random.Random(seed)
        self.stations = [Station(f"station-{i:03d}", random.Random(rng.random())) for i in range(count)]
        self.station_tag = station_tag
        self.event_time = event_time
        self._next = 0

    def message(self) -> tuple[bytes, bytes]:
        station = self.stations[self._next]
        self._next = (self._next + 1) % len(self.stations)
        reading: dict[str, object] = {}
        if self.station_tag:
            reading["station_id"] = station.station_id
        reading.update(station.step())
        if self.event_time:
            reading["time"] = station.event_time()
        return orjson.dumps(reading), station.station_id.encode()
