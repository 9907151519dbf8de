"""The benchmark report's arithmetic and rendering: ratios, target verdicts, number formats, the page."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.report import (
    Measurement,
    PartResult,
    Profile,
    comparison_table,
    fmt_number,
    meets,
    ratio,
    write_page,
)


def m(
    system: str, values: list[float], better: str = "higher", workload: str = "w", metric: str = "msg/s"
) -> Measurement:
    return Measurement(workload, system, metric, better, values)


def part(name: str, measurements: list[Measurement], targets: list[tuple[str, str, str, float]]) -> PartResult:
    return PartResult(name, f"title {name}", "2026-11-25 14:40", 61.0, 0.1, 3, {}, {}, measurements, targets=targets)


def test_median_and_spread_come_from_all_runs() -> None:
    run = m("tidepool", [30.0, 10.0, 20.0])
    assert (run.median, run.low, run.high) == (20.0, 10.0, 30.0)


def test_ratio_is_tidepool_median_over_peer_median() -> None:
    assert ratio(m("tidepool", [50, 60, 70]), m("kafka", [100, 120, 140])) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("ours", "theirs", "better", "target", "expected"),
    [
        (100, 100, "higher", 1.0, True),
        (99, 100, "higher", 1.0, False),
        (50, 100, "higher", 0.5, True),
        (49, 100, "higher", 0.5, False),
        (10, 10, "lower", 1.0, True),  # no slower
        (11, 10, "lower", 1.0, False),
        (20, 10, "lower", 0.5, True),  # at most twice the time is 0.5× the speed
    ],
)
def test_target_is_judged_in_the_metrics_direction(
    ours: float, theirs: float, better: str, target: float, expected: bool
) -> None:
    assert meets(m("tidepool", [ours], better), m("peer", [theirs], better), target) is expected


@pytest.mark.parametrize(
    ("value", "shown"),
    [(1_234_567, "1,230,000"), (123.4, "123"), (12.34, "12.3"), (1.234, "1.23"), (0.01234, "0.0123"), (0, "0")],
)
def test_numbers_show_three_significant_digits(value: float, shown: str) -> None:
    assert fmt_number(value) == shown


def test_table_lists_tidepool_first_and_ratios_against_each_peer() -> None:
    rows = comparison_table([m("kafka", [200.0]), m("tidepool broker", [100.0]), m("tansu", [50.0])])
    body = rows[2:]
    assert [r.split(" | ")[1] for r in body] == ["tidepool broker", "kafka", "tansu"]
    assert body[0].endswith("| – |")
    assert body[1].endswith("| 0.50× |")
    assert body[2].endswith("| 2.00× |")


def test_target_lines_say_met_missed_or_not_measured() -> None:
    result = part(
        "broker",
        [m("tidepool broker", [40.0]), m("tansu", [50.0]), m("Apache Kafka", [70.0])],
        [
            ("w", "tansu", "≥ 1× tansu", 1.0),
            ("w", "Apache Kafka", "≥ 0.5× Kafka", 0.5),
            ("w", "absent", "≥ 1× absent", 1.0),
            ("w", "", "≥ 30 msg/s", 30.0),
        ],
    )
    lines = result.target_lines()
    assert "**missed**" in lines[0] and "0.80×" in lines[0]
    assert " met " in lines[1] and "0.57×" in lines[1]
    assert "**not measured** — absent has no result here" in lines[2]
    assert " met " in lines[3] and "40" in lines[3]


def test_absolute_time_target_is_met_only_below_it() -> None:
    result = part("groups", [m("tidepool", [1200.0], "lower", metric="ms")], [("w", "", "join < 1 s", 1000.0)])
    assert "**missed**" in result.target_lines()[0]


def test_saved_part_loads_back_equal(tmp_path: Path) -> None:
    saved = part("db", [m("tidepool db", [1.0, 2.0, 3.0], "lower", metric="ms")], [("w", "x", "label", 1.0)])
    saved.profiles["tidepool-db during ingest"] = Profile(120, [("parse (lp.py:9)", 50.0, 60.0)])
    loaded = PartResult.load(saved.save(tmp_path))
    assert loaded == saved


def test_page_renders_saved_parts_in_order_and_names_the_missing(tmp_path: Path) -> None:
    results = tmp_path / "results"
    part("groups", [m("tidepool broker", [100.0], "lower", metric="ms")], []).save(results)
    part("db", [m("tidepool db", [10.0]), m("InfluxDB", [20.0])], []).save(results)
    page = write_page(results, tmp_path / "docs" / "benchmarks.md", ["# Benchmarks", ""])
    text = page.read_text()
    assert text.index("## title db") < text.index("## title groups")
    assert "`python -m bench broker` has no saved result" in text
    assert "`python -m bench pipeline` has no saved result" in text
    assert "| w | InfluxDB | 20 | msg/s |" in text


def test_a_partial_rerun_replaces_only_its_own_systems() -> None:
    earlier = part("db", [m("tidepool db", [1.0]), m("InfluxDB", [2.0])], [])
    earlier.failures = ["tidepool db: crashed", "InfluxDB query 'x': timeout"]
    rerun = part("db", [m("tidepool db", [5.0])], [])
    merged = rerun.merged_into(earlier)
    assert sorted((x.system, x.values[0]) for x in merged.measurements) == [("InfluxDB", 2.0), ("tidepool db", 5.0)]
    assert merged.failures == ["InfluxDB query 'x': timeout"]
    assert merged.notes[-1].startswith("Re-run 2026-11-25 14:40 UTC for tidepool db")


def test_fastest_peer_target_compares_with_the_best_peer_in_the_metrics_direction() -> None:
    result = part(
        "db",
        [m("tidepool db", [20.0], "lower"), m("InfluxDB", [30.0], "lower"), m("VictoriaMetrics", [10.0], "lower")],
        [("w", "*", "no slower than the faster peer", 1.0)],
    )
    (line,) = result.target_lines()
    assert "**missed**" in line and "VictoriaMetrics = 2.00×" in line


def test_a_run_at_another_scale_gets_its_own_file_and_section(tmp_path: Path) -> None:
    results = tmp_path / "results"
    default = part("db", [m("tidepool db", [10.0])], [])
    full = part("db", [m("tidepool db", [12.0])], [("w", "", "≥ 5 msg/s", 5.0)])
    full.scale = 1.0
    assert default.save(results).name == "db.json"
    assert full.save(results).name == "db-scale-1.json"
    text = write_page(results, tmp_path / "benchmarks.md", []).read_text()
    assert text.index("## title db\n") < text.index("## title db — scale 1\n")
    glance = text[text.index("## Targets at a glance") : text.index("## title db\n")]
    assert "title db — scale 1 (run 2026-11-25 14:40 UTC):\n\n- ≥ 5 msg/s: met" in glance
    assert (tmp_path / "benchmarks" / "db-scale-1.png").exists() or "![" not in text


def test_an_absolute_target_is_judged_for_each_tidepool_setup() -> None:
    result = part(
        "pipeline",
        [m("tidepool (as shipped)", [9_000.0]), m("tidepool tuned", [60_000.0]), m("other", [1.0])],
        [("w", "", "≥ 50,000 msg/s", 50_000.0)],
    )
    assert result.target_lines() == [
        "- ≥ 50,000 msg/s (tidepool (as shipped)): **missed** — measured 9,000 msg/s",
        "- ≥ 50,000 msg/s (tidepool tuned): met — measured 60,000 msg/s",
    ]


def test_a_profile_with_too_few_samples_gives_only_its_busy_share(tmp_path: Path) -> None:
    results = tmp_path / "results"
    busy = part("broker", [m("tidepool broker", [1.0])], [])
    busy.profiles["tidepool-broker during produce"] = Profile(3, [("append (segment.py:1)", 100.0, 100.0)], 1.0)
    busy.profiles["tidepool-db during ingest"] = Profile(900, [("parse (lp.py:9)", 50.0, 60.0)], 10.0)
    busy.save(results)
    text = write_page(results, tmp_path / "benchmarks.md", []).read_text()
    assert "tidepool-broker during produce: 3 busy samples in 1.0 s (≈3 % of one core) — too few" in text
    assert "tidepool-db during ingest: 900 busy samples in 10.0 s (≈91 % of one core)." in text
    assert "append (segment.py:1)" not in text
    assert "| `parse (lp.py:9)` | 50.0 | 60.0 |" in text


def test_profiles_carried_over_name_the_run_they_come_from() -> None:
    earlier = part("db", [], [])
    earlier.profiles["tidepool-db during ingest"] = Profile(900, [])
    carried = earlier.profiles_carried_over()
    assert list(carried) == ["tidepool-db during ingest (profiled in the run of 2026-11-25 14:40 UTC)"]
    later = part("db", [], [])
    later.profiles = carried
    assert list(later.profiles_carried_over()) == list(carried)  # labelled once, not again
