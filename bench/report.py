"""Benchmark results: the measurement record, its statistics, ratios to the peers, and docs/benchmarks.md + charts.

A part of the suite writes one JSON file (`bench/results/<part>.json`: the machine, scale, peer versions, failures
and a list of `Measurement`s); `write_page` renders every part found into one Markdown page, so a part re-run alone
replaces only its own section.
"""

from __future__ import annotations

import json
import statistics
import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TIDEPOOL = "tidepool"
MIN_PROFILE_SAMPLES = 50  # below this a profile is noise: the page gives the count and the busy share only
DEFAULT_SCALE = 0.1  # `make bench`; results at other scales are kept beside, as their own sections
FASTEST = "*"  # a target's peer meaning "whichever peer did best"


@dataclass
class Measurement:
    """One workload on one system: the metric's value in each run, with the resources used beside it.

    `better` is "higher" (throughput) or "lower" (time, size). CPU figures are percent of one core over the
    run's wall time; RSS is the server's process-tree peak in MiB.
    """

    workload: str
    system: str
    metric: str
    better: str
    values: list[float]
    server_rss_mb: list[float] = field(default_factory=list)
    client_cpu_pct: list[float] = field(default_factory=list)
    server_cpu_pct: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        return cls(**data)


def ratio(tidepool: Measurement, peer: Measurement) -> float:
    """tidepool's median ÷ the peer's median, in the metric's own terms (lines/s ÷ lines/s, ms ÷ ms)."""
    if peer.median == 0:
        return float("inf") if tidepool.median > 0 else 1.0
    return tidepool.median / peer.median


def meets(tidepool: Measurement, peer: Measurement, target: float) -> bool:
    """Whether tidepool reaches `target`× the peer: for "higher" metrics ratio ≥ target, for "lower" ≤ 1/target."""
    r = ratio(tidepool, peer)
    return r >= target if tidepool.better == "higher" else r <= 1 / target


def fmt_number(value: float) -> str:
    """Three significant digits at most, thousands separated: 1,234,567 → "1,230,000"; 0.01234 → "0.0123"."""
    if value == 0:
        return "0"
    if value == float("inf"):
        return "∞"
    magnitude = abs(value)
    if magnitude >= 100:
        digits = len(str(int(magnitude)))
        rounded = round(value, 3 - digits)
        return f"{int(rounded):,}"
    if magnitude >= 1:
        return f"{value:.3g}" if magnitude < 10 else f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def fmt_spread(m: Measurement) -> str:
    if len(m.values) == 1:
        return fmt_number(m.median)
    return f"{fmt_number(m.median)} ({fmt_number(m.low)}–{fmt_number(m.high)})"


def fmt_mean(values: list[float]) -> str:
    return fmt_number(statistics.median(values)) if values else "–"


def fmt_percent(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} %" if values else "–"


def comparison_table(measurements: list[Measurement]) -> list[str]:
    """Markdown rows: one per (workload, system); tidepool first, ratios as tidepool ÷ peer."""
    lines = [
        "| workload | system | median (min–max) | unit | server peak RSS MiB | client CPU | server CPU "
        "| tidepool ÷ this |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workload, group in group_by_workload(measurements).items():
        ours = next((m for m in group if m.system.startswith(TIDEPOOL)), None)
        for m in group:
            shown = "–" if ours is None or m is ours else f"{ratio(ours, m):.2f}×"
            note = f" ({m.note})" if m.note else ""
            lines.append(
                f"| {workload} | {m.system}{note} | {fmt_spread(m)} | {m.metric} | {fmt_mean(m.server_rss_mb)} | "
                f"{fmt_percent(m.client_cpu_pct)} | {fmt_percent(m.server_cpu_pct)} | {shown} |"
            )
    return lines


def group_by_workload(measurements: list[Measurement]) -> dict[str, list[Measurement]]:
    """Measurements grouped by workload in first-seen order; within a group tidepool (its first setup the reference)
    comes first, then the peers, each in the order measured."""
    groups: dict[str, list[Measurement]] = {}
    for m in measurements:
        groups.setdefault(m.workload, []).append(m)
    for group in groups.values():
        group.sort(key=lambda m: not m.system.startswith(TIDEPOOL))  # stable: otherwise in the order measured
    return groups


@dataclass
class Profile:
    """A py-spy summary: how many busy samples over how many seconds, and (frame, own %, on-stack %) rows."""

    samples: int
    frames: list[tuple[str, float, float]]
    seconds: float = 0.0

    @property
    def busy(self) -> str:
        """Busy samples as a share of one core at 99 Hz (threads add up, so it can pass 100 %)."""
        return f"≈{100 * self.samples / (99 * self.seconds):.0f} % of one core" if self.seconds else "share unknown"


@dataclass
class PartResult:
    """Everything one part of the suite measured in one invocation, as saved to bench/results/<part>.json."""

    part: str
    title: str
    started: str
    duration_s: float
    scale: float
    runs: int
    machine: dict[str, str]
    versions: dict[str, str]
    measurements: list[Measurement]
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: list[tuple[str, str, str, float]] = field(default_factory=list)  # (workload, peer, label, target)
    profiles: dict[str, Profile] = field(default_factory=dict)  # what was profiled → its summary

    @property
    def key(self) -> str:
        """The file stem of this result: the part's name, plus the scale when it is not the default."""
        return self.part if self.scale == DEFAULT_SCALE else f"{self.part}-scale-{self.scale:g}"

    @property
    def heading(self) -> str:
        return self.title if self.scale == DEFAULT_SCALE else f"{self.title} — scale {self.scale:g}"

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.key}.json"
        data = asdict(self)
        data["measurements"] = [m.to_json() for m in self.measurements]
        path.write_text(json.dumps(data, indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> PartResult:
        data = json.loads(path.read_text())
        data["measurements"] = [Measurement.from_json(m) for m in data["measurements"]]
        data["targets"] = [tuple(t) for t in data.get("targets", [])]
        data["profiles"] = {
            k: Profile(v["samples"], [tuple(f) for f in v["frames"]], v.get("seconds", 0.0))
            for k, v in data.get("profiles", {}).items()
        }
        return cls(**data)

    def merged_into(self, earlier: PartResult) -> PartResult:
        """This (partial, `--only`) run laid over an earlier full one: the systems measured now replace theirs."""
        rerun = {m.system for m in self.measurements} | set(self.versions)
        kept = [m for m in earlier.measurements if m.system not in rerun]
        failures = [f for f in earlier.failures if not any(f.startswith(s) for s in rerun)]
        return PartResult(
            part=self.part,
            title=self.title,
            started=earlier.started,
            duration_s=earlier.duration_s,
            scale=self.scale,
            runs=self.runs,
            machine=self.machine,
            versions={**earlier.versions, **self.versions},
            measurements=kept + self.measurements,
            failures=failures + self.failures,
            notes=[
                *[n for n in earlier.notes if not n.startswith("Re-run ")],
                f"Re-run {self.started} UTC for {', '.join(sorted(rerun))}.",
            ],
            targets=self.targets,
            profiles={**earlier.profiles, **self.profiles},
        )

    def best_peer(self, workload: str) -> Measurement | None:
        """The peer with the best median on `workload` (highest for "higher" metrics, lowest for "lower")."""
        peers = [m for m in self.measurements if m.workload == workload and not m.system.startswith(TIDEPOOL)]
        if not peers:
            return None
        pick = max if peers[0].better == "higher" else min
        return pick(peers, key=lambda m: m.median)

    def profiles_carried_over(self) -> dict[str, Profile]:
        """This result's profiles, labelled with its run's time, for a later run made without --profile."""
        marker = " (profiled in the run of "
        return {k if marker in k else f"{k}{marker}{self.started} UTC)": v for k, v in self.profiles.items()}

    def find(self, workload: str, system_prefix: str) -> Measurement | None:
        return next(
            (m for m in self.measurements if m.workload == workload and m.system.startswith(system_prefix)), None
        )

    def target_lines(self) -> list[str]:
        """One line per target: met / missed with the measured ratio, or why it could not be judged."""
        out = []
        for workload, peer, label, target in self.targets:
            ours = self.find(workload, TIDEPOOL)
            theirs = self.best_peer(workload) if peer == FASTEST else self.find(workload, peer) if peer else None
            if ours is None or (peer and theirs is None):
                missing = "tidepool" if ours is None else ("no peer" if peer == FASTEST else peer)
                out.append(f"- {label}: **not measured** — {missing} has no result here (see the part's failures)")
            elif theirs is None:  # an absolute target: judged for every tidepool setup measured on the workload
                setups = [m for m in self.measurements if m.workload == workload and m.system.startswith(TIDEPOOL)]
                for m in setups:
                    ok = m.median >= target if m.better == "higher" else m.median <= target
                    verdict = "met" if ok else "**missed**"
                    who = f" ({m.system})" if len(setups) > 1 else ""
                    out.append(f"- {label}{who}: {verdict} — measured {fmt_number(m.median)} {m.metric}")
            else:
                verdict = "met" if meets(ours, theirs, target) else "**missed**"
                out.append(f"- {label}: {verdict} — tidepool ÷ {theirs.system} = {ratio(ours, theirs):.2f}×")
        return out


def render_part(result: PartResult, chart: Path | None) -> list[str]:
    lines = [f"## {result.heading}", ""]
    lines.append(
        f"Run {result.started} UTC, {result.duration_s / 60:.1f} min, scale {result.scale:g}, "
        f"{result.runs} runs per measurement."
    )
    lines.append("")
    if result.versions:
        lines.append("Versions: " + "; ".join(f"{k} {v}" for k, v in result.versions.items()) + ".")
        lines.append("")
    if result.machine:
        lines.append("Machine: " + "; ".join(f"{k} {v}" for k, v in result.machine.items()) + ".")
        lines.append("")
    if result.notes:
        lines += [*(f"- {n}" for n in result.notes), ""]
    if result.measurements:
        lines += comparison_table(result.measurements)
        lines.append("")
    if chart is not None:
        lines += [f"![{result.heading}]({chart.parent.name}/{chart.name})", ""]
    if result.failures:
        lines += ["Failed or missing in this run:", "", *[f"- {f}" for f in result.failures], ""]
    for what, profile in result.profiles.items():
        head = f"Profile (py-spy at 99 Hz, an extra unmeasured run) of {what}: {profile.samples:,} busy samples"
        head += f" in {profile.seconds:.1f} s ({profile.busy})" if profile.seconds else ""
        if profile.samples < MIN_PROFILE_SAMPLES:
            lines += [f"{head} — too few to rank frames.", ""]
            continue
        lines += [
            f"{head}. The hottest frames by own time, then tidepool's functions by time on the stack; threads "
            "running native code with no Python frame (DataFusion, librdkafka) count on the `process` line.",
            "",
        ]
        lines += ["| frame | own % | on stack % |", "|---|---|---|"]
        lines += [f"| `{frame}` | {own:.1f} | {total:.1f} |" for frame, own, total in profile.frames]
        lines.append("")
    return lines


def write_charts(result: PartResult, directory: Path) -> Path | None:
    """One PNG per part: grouped bars of each workload's median per system, whiskers at min and max.

    Values are shown relative to tidepool's (tidepool = 1.0) so workloads with different units share an axis.
    Returns None if matplotlib is not installed or there is nothing to draw.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    groups = {w: g for w, g in group_by_workload(result.measurements).items() if g[0].system.startswith(TIDEPOOL)}
    if not groups:
        return None
    systems = sorted({m.system for g in groups.values() for m in g}, key=lambda s: (not s.startswith(TIDEPOOL), s))
    width = 0.8 / len(systems)
    all_heights: list[float] = []
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(groups) + 2), 4.2))
    for i, system in enumerate(systems):
        xs, heights, errs_low, errs_high = [], [], [], []
        for x, group in enumerate(groups.values()):
            base = group[0].median or 1.0
            m = next((m for m in group if m.system == system), None)
            if m is None:
                continue
            xs.append(x + i * width)
            heights.append(m.median / base)
            errs_low.append((m.median - m.low) / base)
            errs_high.append((m.high - m.median) / base)
        all_heights += heights
        ax.bar(xs, heights, width, label=system, yerr=[errs_low, errs_high], capsize=2)
    ax.set_xticks([x + width * (len(systems) - 1) / 2 for x in range(len(groups))])
    labels = [f"{textwrap.fill(w, 22)}\n({g[0].metric}, {g[0].better} is better)" for w, g in groups.items()]
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("median relative to tidepool (= 1.0)")
    drawn = [h for h in all_heights if h > 0]
    if drawn and max(drawn) / min(drawn) > 20:
        ax.set_yscale("log")
    ax.axhline(1.0, color="grey", linewidth=0.6)
    ax.set_title(result.heading, fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{result.key}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


PART_ORDER = ["db", "broker", "groups", "pipeline"]


def write_page(results_dir: Path, page: Path, header: list[str]) -> Path:
    """Render every saved part into `page` (and its charts into `page`'s sibling folder of the same stem)."""
    charts_dir = page.parent / page.stem
    results = [PartResult.load(p) for p in sorted(results_dir.glob("*.json"))]
    order = {name: i for i, name in enumerate(PART_ORDER)}
    results.sort(key=lambda r: (order.get(r.part, len(order)), r.scale != DEFAULT_SCALE, r.scale))
    lines = list(header)
    glance = [(r, r.target_lines()) for r in results if r.targets]
    if glance:
        lines += ["## Targets at a glance (issue 9)", ""]
        for r, verdicts in glance:
            lines += [f"{r.heading} (run {r.started} UTC):", "", *verdicts, ""]
    for result in results:
        chart = write_charts(result, charts_dir)
        lines += render_part(result, chart)
    missing = [p for p in PART_ORDER if not any(r.part == p for r in results)]
    if missing:
        lines += ["## Not run", "", *[f"- `python -m bench {p}` has no saved result." for p in missing], ""]
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(lines).rstrip() + "\n")
    return page
