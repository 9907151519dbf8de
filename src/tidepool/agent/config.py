"""Telegraf TOML → typed agent config: file discovery, `${VAR}` substitution, `[agent]`, `[global_tags]`, plugins.

As Telegraf does, comments are stripped first and environment variables are substituted in the remaining text
before TOML parsing, so a string option is written `"${VAR}"` and a number or boolean bare `${VAR}`. The forms are
Telegraf's (compose-go templates, checked against Telegraf v1.37.2): `$VAR`, `${VAR}`, `${VAR:-default}` (unset or
empty), `${VAR-default}` (unset), `${VAR:+alt}`/`${VAR+alt}`, `${VAR:?message}`/`${VAR?message}` (required), `$$`;
an unset variable without default is left as written. Several files (and every
`*.conf` of a config directory) merge: plugins accumulate, `[agent]` keys and `[global_tags]` of later files win.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidepool.agent.options import ConfigError, PluginOptions

ETC_CONFIG = Path("/etc/telegraf/telegraf.conf")
ETC_DIRECTORY = Path("/etc/telegraf/telegraf.d")
_ENV = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<named>[_a-zA-Z][_a-zA-Z0-9]*)"
    r"|\{(?P<braced>[_a-zA-Z][_a-zA-Z0-9]*)(?:(?P<op>:?[-+?])(?P<arg>[^}]*))?\})"
)


def strip_comments(text: str) -> str:
    """Remove `#` comments outside TOML strings (basic, literal and multi-line)."""
    out: list[str] = []
    i, n = 0, len(text)
    quote: str | None = None
    while i < n:
        ch = text[i]
        if quote is None:
            if ch == "#":
                end = text.find("\n", i)
                i = n if end < 0 else end
                continue
            if text.startswith('"""', i) or text.startswith("'''", i):
                quote = text[i : i + 3]
                out.append(quote)
                i += 3
                continue
            if ch in "\"'":
                quote = ch
        elif text.startswith(quote, i):
            out.append(quote)
            i += len(quote)
            quote = None
            continue
        elif ch == "\\" and quote[0] == '"' and i + 1 < n:
            out.append(text[i : i + 2])
            i += 2
            continue
        elif ch == "\n" and len(quote) == 1:
            quote = None
        out.append(ch)
        i += 1
    return "".join(out)


def substitute_env(text: str, environ: dict[str, str] | None = None) -> str:
    """Telegraf's (compose-go) substitution: `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:+a}`, `${VAR+a}`,
    `${VAR:?msg}`, `${VAR?msg}`, `$$` for a dollar; an unset `$VAR`/`${VAR}` stays as written.

    Raises ConfigError for a missing required variable.
    """
    env = os.environ if environ is None else environ

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("named") or match.group("braced")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        if op is None:
            return match.group(0) if value is None else value
        empty = value is None or (op.startswith(":") and value == "")
        if op.endswith("-"):
            return arg if empty else str(value)
        if op.endswith("+"):
            return "" if empty else arg
        if empty:
            detail = f": {arg}" if arg else ""
            raise ConfigError(f"required variable {name} is missing a value{detail}")
        return str(value)

    return _ENV.sub(replace, text)


@dataclass
class AgentSettings:
    """The `[agent]` table, with Telegraf's defaults. Durations are in seconds."""

    interval: float = 10.0
    round_interval: bool = True
    metric_batch_size: int = 1000
    metric_buffer_limit: int = 10000
    collection_jitter: float = 0.0
    flush_interval: float = 10.0
    flush_jitter: float = 0.0
    precision: float = 0.0
    hostname: str = ""
    omit_hostname: bool = False
    debug: bool = False
    quiet: bool = False
    logfile: str = ""

    def resolved_hostname(self) -> str:
        return self.hostname or socket.gethostname()


# [agent] keys Telegraf knows that tidepool reads without acting on them (see docs/agent.md).
_AGENT_ACCEPTED = {
    "collection_offset", "logformat", "logtarget", "log_with_timezone", "logfile_rotation_interval",
    "logfile_rotation_max_size", "logfile_rotation_max_archives", "utc", "skip_processors_after_aggregators",
    "snmp_translator", "statefile", "always_include_local_tags", "always_include_global_tags", "buffer_strategy",
    "buffer_directory", "persist_state", "log_level",
}  # fmt: skip


@dataclass
class PluginTable:
    """One `[[kind.name]]` table as written, and where: the loader turns it into a running plugin."""

    kind: str  # "inputs" | "outputs" | "processors" | "aggregators"
    name: str
    table: dict[str, Any]
    source: str
    line: int

    @property
    def full_name(self) -> str:
        return f"{self.kind}.{self.name}"


@dataclass
class AgentConfig:
    agent: AgentSettings = field(default_factory=AgentSettings)
    global_tags: dict[str, str] = field(default_factory=dict)
    inputs: list[PluginTable] = field(default_factory=list)
    outputs: list[PluginTable] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def unused_fields_error(source: str, line: int, plugin: str | None, unused: list[str]) -> ConfigError:
    """Telegraf's message for options nobody read, e.g. `configuration specified the fields ["foo"], but ...`."""
    quoted = " ".join(f'"{key}"' for key in unused)
    where = f"plugin {plugin}: " if plugin else ""
    return ConfigError(
        f"loading config file {source} failed: {where}line {line}: configuration specified the fields [{quoted}], "
        "but they were not used; this is either a typo or this config option does not exist in this version"
    )


def _line_of(text: str, header: str, occurrence: int) -> int:
    pattern = re.compile(r"^[ \t]*" + re.escape(header) + r"[ \t]*$", re.MULTILINE)
    matches = list(pattern.finditer(text))
    if occurrence < len(matches):
        return text.count("\n", 0, matches[occurrence].start()) + 1
    return 1


def _apply_agent(settings: AgentSettings, table: dict[str, Any], source: str, text: str) -> None:
    opts = PluginOptions(table, "agent")
    durations = ("interval", "collection_jitter", "flush_interval", "flush_jitter", "precision")
    for key in durations:
        if key in table:
            setattr(settings, key, opts.duration(key))
    for key in ("metric_batch_size", "metric_buffer_limit"):
        if key in table:
            value = opts.integer(key)
            if value <= 0:
                raise ConfigError(f"loading config file {source} failed: agent: {key} must be positive, got {value}")
            setattr(settings, key, value)
    for key in ("round_interval", "omit_hostname", "debug", "quiet"):
        if key in table:
            setattr(settings, key, opts.boolean(key))
    for key in ("hostname", "logfile"):
        if key in table:
            setattr(settings, key, opts.string(key))
    opts.accept(*_AGENT_ACCEPTED)
    unused = opts.unused()
    if unused:
        raise unused_fields_error(source, 1, None, unused)  # Telegraf reports the line of the whole document


def load_text(config: AgentConfig, text: str, source: str, environ: dict[str, str] | None = None) -> None:
    """Merge one file's text into `config`."""
    try:
        cleaned = substitute_env(strip_comments(text), environ)
        document = tomllib.loads(cleaned)
    except (ConfigError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"loading config file {source} failed: error parsing data: {exc}") from None
    for key, value in document.items():
        if key == "agent":
            if not isinstance(value, dict):
                raise ConfigError(f"loading config file {source} failed: invalid configuration, bad table name 'agent'")
            _apply_agent(config.agent, value, source, cleaned)
        elif key == "global_tags":
            if not isinstance(value, dict):
                raise ConfigError(f"loading config file {source} failed: invalid global_tags")
            config.global_tags.update({k: str(v) for k, v in value.items()})
        elif key in ("inputs", "outputs", "processors", "aggregators"):
            if not isinstance(value, dict):
                raise ConfigError(f"loading config file {source} failed: invalid configuration, bad table name {key!r}")
            for name, tables in value.items():
                entries = tables if isinstance(tables, list) else [tables]
                for index, table in enumerate(entries):
                    line = _line_of(cleaned, f"[[{key}.{name}]]", index)
                    plugin = PluginTable(key, name, table, source, line)
                    if key == "inputs":
                        config.inputs.append(plugin)
                    elif key == "outputs":
                        config.outputs.append(plugin)
                    else:
                        raise ConfigError(
                            f"loading config file {source} failed: plugin {key}.{name}: "
                            f"{key} are not supported by tidepool agent"
                        )
        else:
            raise ConfigError(f"loading config file {source} failed: invalid configuration, bad table name {key!r}")
    config.files.append(source)


def load(
    files: Sequence[str],
    directories: Sequence[str] = (),
    environ: dict[str, str] | None = None,
) -> AgentConfig:
    """Read every config file, then every `*.conf` of each directory (sorted), into one AgentConfig."""
    config = AgentConfig()
    paths: list[Path | str] = [f if _is_url(f) else Path(f) for f in files]
    for directory in directories:
        root = Path(directory)
        if not root.is_dir():
            raise ConfigError(f"loading config directory {directory} failed: not a directory")
        paths.extend(sorted(p for p in root.rglob("*.conf") if p.is_file()))
    if not paths:
        default = _default_config_path(environ)
        if default is None:
            raise ConfigError(
                "no config file specified, and could not find one in $TELEGRAF_CONFIG_PATH, "
                "/root/.telegraf/telegraf.conf, or /etc/telegraf/telegraf.conf".replace("/root", str(Path.home()))
            )
        paths.append(default)
        if default == ETC_CONFIG and ETC_DIRECTORY.is_dir():  # as Telegraf: the packaged file and its telegraf.d
            paths.extend(sorted(p for p in ETC_DIRECTORY.rglob("*.conf") if p.is_file()))
    for path in paths:
        text = _fetch(path) if isinstance(path, str) else _read(path)
        load_text(config, text, str(path), environ)
    return config


def _is_url(name: str) -> bool:
    return name.startswith(("http://", "https://"))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise ConfigError(f"loading config file {path} failed: open {path}: {reason}") from None


def _fetch(url: str) -> str:
    """A config given as a URL, fetched as Telegraf does (with `$INFLUX_TOKEN` as a Token header when set)."""
    import urllib.error
    import urllib.request

    headers = {"Accept": "application/toml"}
    if os.environ.get("INFLUX_TOKEN"):
        headers["Authorization"] = f"Token {os.environ['INFLUX_TOKEN']}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return bytes(response.read()).decode("utf-8-sig")
    except urllib.error.HTTPError as exc:
        raise ConfigError(f"loading config file {url} failed: failed to retrieve remote config: {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError(f"loading config file {url} failed: {exc}") from None


def _default_config_path(environ: dict[str, str] | None) -> Path | None:
    env = os.environ if environ is None else environ
    candidates = [
        env.get("TELEGRAF_CONFIG_PATH", ""),
        str(Path.home() / ".telegraf" / "telegraf.conf"),
        str(ETC_CONFIG),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None
