"""Telegraf's per-plugin metric filters: selection (namepass/namedrop/tagpass/tagdrop) then modification
(fieldinclude/fieldexclude/taginclude/tagexclude). Globs use `*`, `?` and `[…]`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fnmatch import fnmatchcase

from tidepool.agent.options import ConfigError, PluginOptions
from tidepool.lineproto import Metric


class Globs:
    """Telegraf's filter.Compile: a key matches if it equals a plain pattern or matches a glob."""

    def __init__(self, patterns: list[str]) -> None:
        self.exact = frozenset(p for p in patterns if not any(c in p for c in "*?["))
        self.globs = [p for p in patterns if p not in self.exact]

    def __bool__(self) -> bool:
        return bool(self.exact or self.globs)

    def match(self, text: str) -> bool:
        return text in self.exact or any(fnmatchcase(text, g) for g in self.globs)


def _globs(opts: PluginOptions, key: str, alias: str | None = None, separator_key: str | None = None) -> Globs | None:
    patterns = opts.strings(key)
    if alias is not None:
        patterns += opts.strings(alias)
    if separator_key is not None:
        separators = opts.string(separator_key)
        if separators:
            split: list[str] = []
            for pattern in patterns:
                parts = [pattern]
                for sep in separators:
                    parts = [piece for part in parts for piece in part.split(sep)]
                split.extend(parts)
            patterns = split
    return Globs(patterns) if patterns else None


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
