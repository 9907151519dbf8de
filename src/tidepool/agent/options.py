"""Typed access to one plugin's TOML table, remembering which keys were read.

Telegraf fails at start when a table names an option no plugin used; `PluginOptions.unused()` is what lets the
loader do the same. Durations and sizes follow Telegraf's config types: a bare number of seconds or a string
such as "10s", "1m30s", "1d"; sizes as 1000000, "1MB", "512KiB".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d|w)")
_UNIT_SECONDS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0,
}  # fmt: skip
_SIZE = re.compile(r"(\d+(?:\.\d*)?)\s*([kmgt]i?b?|b)?", re.IGNORECASE)


class ConfigError(ValueError):
    """A configuration Telegraf would refuse at start; the message is what the user sees."""


def parse_duration(value: Any, what: str = "duration") -> float:
    """Seconds from a Telegraf duration: int/float seconds, or a Go-style string ("10s", "1m30s", "1d")."""
    if isinstance(value, bool):
        raise ConfigError(f"invalid {what} {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"invalid {what} {value!r}")
    text = value.strip().replace(" ", "")
    if text == "":
        return 0.0
    if re.fullmatch(r"\d+(?:\.\d*)?", text):
        return float(text)
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-")
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ConfigError(f'time: invalid duration "{value}"')
    return sign * total


def parse_size(value: Any, what: str = "size") -> int:
    """Bytes from a Telegraf size: an integer, or a string such as "1MB", "64KiB"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if match:
            unit = (match.group(2) or "").lower()
            base = 1024 if "i" in unit else 1000
            letter = unit[:1] if unit not in ("b", "") else ""
            factor = base ** ("kmgt".index(letter) + 1) if letter else 1
            return int(float(match.group(1)) * factor)
    raise ConfigError(f"invalid {what} {value!r}")


class PluginOptions:
    """One `[[inputs.x]]`/`[[outputs.x]]` table: typed getters that record every key they read."""

    def __init__(self, table: dict[str, Any], plugin: str) -> None:
        self.table = table
        self.plugin = plugin
        self.used: set[str] = set()

    def __contains__(self, key: str) -> bool:
        return key in self.table

    def _get(self, key: str, default: Any) -> Any:
        self.used.add(key)
        return self.table.get(key, default)

    def _type_error(self, key: str, value: Any, expected: str) -> ConfigError:
        return ConfigError(f"plugin {self.plugin}: option {key!r} must be {expected}, got {value!r}")

    def string(self, key: str, default: str = "") -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise self._type_error(key, value, "a string")
        return value

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self._type_error(key, value, "true or false")
        return value

    def integer(self, key: str, default: int = 0) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._type_error(key, value, "an integer")
        return value

    def strings(self, key: str, default: Iterable[str] = ()) -> list[str]:
        value = self._get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._type_error(key, value, "a list of strings")
        return list(value)

    def integers(self, key: str, default: Iterable[int] = ()) -> list[int]:
        value = self._get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise self._type_error(key, value, "a list of integers")
        return list(value)

    def duration(self, key: str, default: float = 0.0) -> float:
        value = self._get(key, default)
        try:
            return parse_duration(value, key)
        except ConfigError as exc:
            raise ConfigError(f"plugin {self.plugin}: option {key!r}: {exc}") from None

    def size(self, key: str, default: int = 0) -> int:
        value = self._get(key, default)
        try:
            return parse_size(value, key)
        except ConfigError as exc:
            raise ConfigError(f"plugin {self.plugin}: option {key!r}: {exc}") from None

    def string_table(self, key: str) -> dict[str, str]:
        value = self._get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self._type_error(key, value, "a table of strings")
        return dict(value)

    def raw(self, key: str, default: Any = None) -> Any:
        return self._get(key, default)

    def accept(self, *keys: str) -> None:
        """Options Telegraf knows that tidepool reads but does not act on (documented in docs/agent.md)."""
        self.used.update(keys)

    def unused(self) -> list[str]:
        return [key for key in self.table if key not in self.used]
