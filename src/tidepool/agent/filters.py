"""Telegraf's per-plugin metric filters: selection (namepass/namedrop/tagpass/tagdrop) then modification
(fieldinclude/fieldexclude/taginclude/tagexclude), with Telegraf's glob matching (gobwas/glob syntax).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from tidepool.agent.options import ConfigError, PluginOptions
from tidepool.lineproto import Metric


class GlobSyntaxError(ValueError):
    pass


def glob_regex(pattern: str, separators: str = "") -> str:
    """A gobwas/glob pattern as a regular expression: `*` (not across separators), `**`, `?`, `[a-z]`, `[!…]`,
    `{a,b}` alternatives and `\\` escapes."""
    not_sep = f"[^{re.escape(separators)}]" if separators else "."
    out: list[str] = []
    depth = 0
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise GlobSyntaxError(f"unexpected end of pattern {pattern!r}")
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "*":
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
            else:
                out.append(f"{not_sep}*")
                i += 1
            continue
        if ch == "?":
            out.append(not_sep)
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise GlobSyntaxError(f"unclosed [ in {pattern!r}")
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            if not body:
                raise GlobSyntaxError(f"empty character class in {pattern!r}")
            parts: list[str] = []
            j = 0
            while j < len(body):
                if j + 2 < len(body) and body[j + 1] == "-":
                    parts.append(f"{re.escape(body[j])}-{re.escape(body[j + 2])}")
                    j += 3
                else:
                    parts.append(re.escape(body[j]))
                    j += 1
            out.append(f"[{'^' if negate else ''}{''.join(parts)}]")
            i = end + 1
            continue
        elif ch == "{":
            depth += 1
            out.append("(?:")
        elif ch == "}" and depth:
            depth -= 1
            out.append(")")
        elif ch == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(ch))
        i += 1
    if depth:
        raise GlobSyntaxError(f"unclosed {{ in {pattern!r}")
    return "".join(out)


def _split_alternatives(body: str) -> list[str] | None:
    """The comma-separated alternatives of one `{…}` group covering the whole of `body` (with braces), else None."""
    if not (body.startswith("{") and body.endswith("}")):
        return None
    parts, depth, start = [], 0, 1
    for index, ch in enumerate(body):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0 and index != len(body) - 1:
                return None
        elif ch == "," and depth == 1:
            parts.append(body[start:index])
            start = index + 1
    parts.append(body[start:-1])
    return parts


def _matches_empty_quirk(pattern: str) -> bool:
    """gobwas/glob lets a pattern that is one single-character matcher (`?` or `[!…]`, alone or as a whole
    alternative) match the empty string; Telegraf inherits that, so tidepool does too."""
    if pattern == "?" or re.fullmatch(r"\[![^\]]+\]", pattern):
        return True
    alternatives = _split_alternatives(pattern)
    return alternatives is not None and any(_matches_empty_quirk(a) for a in alternatives)


class Globs:
    """Telegraf's filter.Compile: plain strings match exactly unless any pattern has `*`, `?` or `[` (or separators
    are given); then every pattern is a glob."""

    def __init__(self, patterns: list[str], separators: str = "") -> None:
        self.patterns = list(patterns)
        wildcards = bool(separators) or any(c in p for p in patterns for c in "*?[")
        self.exact: frozenset[str] = frozenset() if wildcards else frozenset(patterns)
        self.regex: re.Pattern[str] | None = None
        self.empty_matches = wildcards and any(_matches_empty_quirk(p) for p in patterns)
        if wildcards:
            try:
                self.regex = re.compile("|".join(f"(?:{glob_regex(p, separators)})" for p in patterns), re.DOTALL)
            except GlobSyntaxError as exc:
                raise ConfigError(f"invalid glob: {exc}") from None

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def match(self, text: str) -> bool:
        if self.regex is not None:
            return self.regex.fullmatch(text) is not None or (self.empty_matches and not text)
        return text in self.exact


def _globs(opts: PluginOptions, key: str, alias: str | None = None, separator_key: str | None = None) -> Globs | None:
    patterns = opts.strings(key)
    if alias is not None:
        patterns += opts.strings(alias)
    separators = opts.string(separator_key) if separator_key is not None else ""
    return Globs(patterns, separators) if patterns else None


def _tag_table(opts: PluginOptions, key: str) -> dict[str, Globs] | None:
    table = opts.raw(key, {})
    if not isinstance(table, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in table.values()
    ):
        raise ConfigError(f"plugin {opts.plugin}: {key} must be a table of string lists")
    return {k: Globs(v) for k, v in table.items()} or None


@dataclass
class MetricFilter:
    namepass: Globs | None = None
    namedrop: Globs | None = None
    tagpass: dict[str, Globs] | None = None
    tagdrop: dict[str, Globs] | None = None
    fieldinclude: Globs | None = None
    fieldexclude: Globs | None = None
    taginclude: Globs | None = None
    tagexclude: Globs | None = None

    @classmethod
    def from_options(cls, opts: PluginOptions) -> MetricFilter | None:
        if opts.raw("metricpass"):
            raise ConfigError(f"plugin {opts.plugin}: metricpass (CEL expressions) is not supported by tidepool")
        built = cls(
            namepass=_globs(opts, "namepass", separator_key="namepass_separator"),
            namedrop=_globs(opts, "namedrop", separator_key="namedrop_separator"),
            tagpass=_tag_table(opts, "tagpass"),
            tagdrop=_tag_table(opts, "tagdrop"),
            fieldinclude=_globs(opts, "fieldinclude", "fieldpass"),
            fieldexclude=_globs(opts, "fieldexclude", "fielddrop"),
            taginclude=_globs(opts, "taginclude"),
            tagexclude=_globs(opts, "tagexclude"),
        )
        return None if built == cls() else built

    @property
    def modifies(self) -> bool:
        return any((self.fieldinclude, self.fieldexclude, self.taginclude, self.tagexclude))

    def select(self, metric: Metric) -> bool:
        if self.namepass is not None and not self.namepass.match(metric.name):
            return False
        if self.namedrop is not None and self.namedrop.match(metric.name):
            return False
        if self.tagpass is not None and not self._tags_match(metric, self.tagpass):
            return False
        return not (self.tagdrop is not None and self._tags_match(metric, self.tagdrop))

    @staticmethod
    def _tags_match(metric: Metric, table: dict[str, Globs]) -> bool:
        return any(key in metric.tags and globs.match(metric.tags[key]) for key, globs in table.items())

    def apply(self, metric: Metric, copy: bool) -> Metric | None:
        """The metric as this filter lets it through (a modified copy when `copy`), or None if filtered out."""
        if not self.select(metric):
            return None
        if not self.modifies:
            return metric
        fields = {
            k: v for k, v in metric.fields.items()
            if (self.fieldinclude is None or self.fieldinclude.match(k))
            and (self.fieldexclude is None or not self.fieldexclude.match(k))
        }  # fmt: skip
        if not fields:
            return None
        tags = {
            k: v for k, v in metric.tags.items()
            if (self.taginclude is None or self.taginclude.match(k))
            and (self.tagexclude is None or not self.tagexclude.match(k))
        }  # fmt: skip
        if copy:
            return replace(metric, tags=tags, fields=fields)
        metric.tags, metric.fields = tags, fields
        return metric
