"""Turning series of runs into rows: metrics, paired ratios, targets, the text table and the JSON file,
and the Markdown tables written between two marker lines of a page (``--write-into``).

Every time-based number exists twice: as measured (the target checks use
these), and with the cyclic garbage collector's time inside the span taken
out ("excl. GC"), which shows the machinery alone. Where a full collection
falls is a matter of allocation thresholds, so at 10k tasks and more the
as-measured ratio can swing on whether one implementation's span happened to
contain a full collection and the other's did not.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from .common import PER_UPDATE, PROGRESS_TASKS, Sample
from .harness import MAIN, Series

__all__ = ["METRICS", "RESULTS_BEGIN", "RESULTS_END", "TARGETS", "MarkerError", "Row", "ScalingRow", "Target",
           "machine", "render", "replace_results", "rows", "scaling_rows", "to_json", "write_into", "write_json"]


class Clock:
    """Which clock the tables use: ``perf_counter`` wall time (the default), or process CPU time
    (``--clock cpu``), which leaves out the time the process sat preempted on a busy machine."""

    cpu = False


def _span(sample: Sample, exclude_gc: bool) -> float:
    seconds = sample.cpu_seconds if Clock.cpu else sample.seconds
    return seconds - sample.gc_seconds if exclude_gc else seconds


def _throughput(sample: Sample, exclude_gc: bool) -> float:
    return sample.units / _span(sample, exclude_gc)


def _seconds(sample: Sample, exclude_gc: bool) -> float:
    return _span(sample, exclude_gc)


def _per_unit(sample: Sample, exclude_gc: bool) -> float:
    return _span(sample, exclude_gc) / sample.units


def _bytes(sample: Sample, exclude_gc: bool) -> float:
    assert sample.bytes_per_task is not None
    return sample.bytes_per_task


@dataclass(frozen=True)
class Metric:
    """What a row reports, how to read it off one sample, and which direction is better."""

    scenario: str
    name: str
    unit: str
    value: Callable[[Sample, bool], float]
    higher_is_better: bool
    scale: float = 1.0  # display multiplier

    @property
    def timed(self) -> bool:
        """False for memory, which garbage collection does not enter into."""
        return self.value is not _bytes

    def per_unit(self, sample: Sample, exclude_gc: bool = False) -> float:
        """The per-unit cost of a sample, for the scaling check (lower is better)."""
        return _per_unit(sample, exclude_gc) if self.timed else _bytes(sample, exclude_gc)


METRICS: tuple[Metric, ...] = (
    Metric("spawn", "throughput", "k tasks/s", _throughput, True, 1e-3),
    Metric("spawn_watched", "throughput", "k tasks/s", _throughput, True, 1e-3),
    Metric("idle", "memory", "B/task", _bytes, False),
    Metric("idle", "start", "us/task", _per_unit, False, 1e6),
    Metric("notify", "time", "ms", _seconds, False, 1e3),
    Metric("stop_all", "time", "ms", _seconds, False, 1e3),
    Metric("progress", "throughput", "M updates/s", _throughput, True, 1e-6),
    Metric("progress_watched", "throughput", "M updates/s", _throughput, True, 1e-6),
)


@dataclass(frozen=True)
class Target:
    """``trio_tasks metric / baseline metric`` must be ``>= bound`` (higher is better) or ``<= bound``."""

    scenario: str
    metric: str
    baseline: str
    bound: float

    def passes(self, ratio: float, higher_is_better: bool) -> bool:
        """Whether ``ratio`` meets this target."""
        return ratio >= self.bound if higher_is_better else ratio <= self.bound

    def describe(self, higher_is_better: bool) -> str:
        """E.g. ``>=0.8x floor``."""
        return f"{'>=' if higher_is_better else '<='}{self.bound:g}x {self.baseline}"


TARGETS: tuple[Target, ...] = (
    Target("spawn", "throughput", "floor", 0.8),
    Target("spawn", "throughput", "asyncio", 1.5),
    Target("spawn_watched", "throughput", "floor", 0.8),
    Target("idle", "memory", "floor", 1.2),
    Target("notify", "time", "floor", 1.2),
    Target("stop_all", "time", "floor", 1.0),
    Target("progress", "throughput", "floor", 0.8),
    Target("progress_watched", "throughput", "floor", 0.8),
)
SCALING_BOUND = 1.3
"""trio_tasks' per-unit cost at any size over that at the smallest size."""

Check = tuple[Target, float, bool]


@dataclass
class Row:
    """One line of the table: a metric of a scenario at a size, for every implementation."""

    metric: Metric
    size: int
    medians: dict[str, float]
    ratios: dict[str, float]  # baseline -> median over repeats of the paired ratio trio_tasks / baseline
    ratios_nogc: dict[str, float]
    gc_share: dict[str, float]  # impl -> median share of the span spent in garbage collection
    checks: list[Check]
    checks_nogc: list[Check]

    @property
    def label(self) -> str:
        """The size as shown: tasks, or tasks x updates for progress."""
        return f"{PROGRESS_TASKS}x{self.size}" if self.metric.scenario in PER_UPDATE else str(self.size)


def _index(series: Sequence[Series]) -> dict[tuple[str, int, str], Series]:
    return {(s.scenario, s.size, s.impl): s for s in series}


def _has(metric: Metric, sample: Sample) -> bool:
    return metric.timed or sample.bytes_per_task is not None


def _median(metric: Metric, series: Series, exclude_gc: bool = False) -> float:
    return statistics.median(metric.value(x, exclude_gc) for x in series.samples if _has(metric, x))


def _paired_ratio(metric: Metric, mine: Series, other: Series, exclude_gc: bool) -> float:
    pairs = [(a, b) for a, b in zip(mine.samples, other.samples, strict=True) if _has(metric, a) and _has(metric, b)]
    return statistics.median(metric.value(a, exclude_gc) / metric.value(b, exclude_gc) for a, b in pairs)


def _checks(metric: Metric, ratios: dict[str, float]) -> list[Check]:
    return [
        (target, ratios[target.baseline], target.passes(ratios[target.baseline], metric.higher_is_better))
        for target in TARGETS
        if target.scenario == metric.scenario and target.metric == metric.name and target.baseline in ratios
    ]


def rows(series: Sequence[Series]) -> list[Row]:
    """One row per metric and size; ratios are medians of per-repeat ratios against each baseline."""
    index = _index(series)
    sizes = sorted({s.size for s in series})
    out = []
    for metric in METRICS:
        for size in sizes:
            mine = index.get((metric.scenario, size, "trio_tasks"))
            if mine is None:
                continue
            impls = [
                s for key, s in index.items()
                if key[0] == metric.scenario and key[1] == size and any(_has(metric, x) for x in s.samples)
            ]  # a variant has no memory samples
            others = [s for s in impls if s.impl != "trio_tasks"]
            ratios = {s.impl: _paired_ratio(metric, mine, s, False) for s in others}
            ratios_nogc = {s.impl: _paired_ratio(metric, mine, s, metric.timed) for s in others}
            out.append(Row(
                metric,
                size,
                {s.impl: _median(metric, s) for s in impls},
                ratios,
                ratios_nogc,
                {s.impl: statistics.median(x.gc_seconds / _span(x, False) for x in s.samples) for s in impls},
                _checks(metric, ratios),
                _checks(metric, ratios_nogc),
            ))
    return out


@dataclass
class ScalingRow:
    """Per-unit cost at a size over that at the smallest size, per implementation, with and without GC."""

    metric: Metric
    size: int
    base_size: int
    ratios: dict[str, float]
    ratios_nogc: dict[str, float]

    @property
    def passed(self) -> bool:
        """The target, on the numbers as measured."""
        return self.ratios["trio_tasks"] <= SCALING_BOUND

    @property
    def passed_nogc(self) -> bool:
        """The target, with garbage collection taken out."""
        return self.ratios_nogc["trio_tasks"] <= SCALING_BOUND


def _growth(metric: Metric, big: Series, small: Series, exclude_gc: bool) -> float:
    def cost(series: Series) -> float:
        return statistics.median(metric.per_unit(x, exclude_gc) for x in series.samples if _has(metric, x))

    return cost(big) / cost(small)


def scaling_rows(series: Sequence[Series]) -> list[ScalingRow]:
    """The scaling check: per-unit cost at each larger size over that at the smallest size."""
    index = _index(series)
    sizes = sorted({s.size for s in series})
    out = []
    for metric in METRICS:
        for size in sizes[1:]:
            pairs = {
                impl: (index[(metric.scenario, size, impl)], index[(metric.scenario, sizes[0], impl)])
                for impl in MAIN
                if (metric.scenario, size, impl) in index and (metric.scenario, sizes[0], impl) in index
            }
            if "trio_tasks" in pairs:
                out.append(ScalingRow(
                    metric,
                    size,
                    sizes[0],
                    {impl: _growth(metric, big, small, False) for impl, (big, small) in pairs.items()},
                    {impl: _growth(metric, big, small, metric.timed) for impl, (big, small) in pairs.items()},
                ))
    return out


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


class Style:
    """How tables are drawn: aligned text (the default) or Markdown (``--markdown``, and what ``--write-into``
    writes into docs/performance.md)."""

    markdown = False


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    if Style.markdown:  # a pipe table (GitHub and MyST); a "|" inside a cell is escaped
        lines = ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in [header, *body]]
        lines.insert(1, "|" + "|".join("---" for _ in header) + "|")
        return "\n".join(lines)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _titled(title: str, table: str) -> str:
    """A table under its title line; in Markdown a blank line between, so that every renderer sees a table."""
    return f"{title}\n\n{table}" if Style.markdown else f"{title}\n{table}"


def _verdict(checks: Sequence[Check]) -> str:
    return ("PASS" if all(ok for _, _, ok in checks) else "MISS") if checks else "-"


def _ratio(ratios: dict[str, float], impl: str) -> str:
    return f"{ratios[impl]:.2f}x" if impl in ratios else "-"


def _main_table(table_rows: Sequence[Row]) -> str:
    """One line per row; "-" for an implementation the scenario does not have (asyncio when watched)."""
    header = ["scenario", "size", "metric", "trio_tasks", "floor", "asyncio", "tt/floor", "tt/asyncio", "target",
              "result", "excl. GC: tt/floor", "tt/asyncio", "result", "GC share tt/floor/asyncio"]
    body = []
    for row in table_rows:
        m = row.metric
        timed = m.timed
        body.append([
            m.scenario, row.label, f"{m.name} [{m.unit}]",
            *(_fmt(row.medians[impl] * m.scale) if impl in row.medians else "-" for impl in MAIN),
            _ratio(row.ratios, "floor"), _ratio(row.ratios, "asyncio"),
            ", ".join(t.describe(m.higher_is_better) for t, _, _ in row.checks) or "-",
            _verdict(row.checks),
            _ratio(row.ratios_nogc, "floor") if timed else "",
            _ratio(row.ratios_nogc, "asyncio") if timed else "",
            _verdict(row.checks_nogc) if timed and row.checks else "",
            "/".join(f"{row.gc_share[impl]:.0%}" if impl in row.gc_share else "-" for impl in MAIN) if timed else "",
        ])
    return _table(header, body)


def _cost_label(metric: Metric) -> str:
    if not metric.timed:
        return "bytes/task"
    return "time/update" if metric.scenario in PER_UPDATE else f"{'start ' if metric.name == 'start' else ''}time/task"


def _scaling_table(scaling: Sequence[ScalingRow]) -> str:
    header = ["scenario", "cost of", "size/base", "trio_tasks", "floor", "asyncio", "target", "result",
              "excl. GC: trio_tasks", "floor", "asyncio", "result"]
    body = []
    for s in scaling:
        timed = s.metric.timed
        body.append([
            s.metric.scenario, _cost_label(s.metric), f"{s.size}/{s.base_size}",
            *(_ratio(s.ratios, impl) for impl in MAIN),
            f"<={SCALING_BOUND:g}x", "PASS" if s.passed else "MISS",
            *((_ratio(s.ratios_nogc, impl) for impl in MAIN) if timed
              else ("", "", "")),
            ("PASS" if s.passed_nogc else "MISS") if timed else "",
        ])
    title = "Scaling: per-unit cost (per task; per update for progress; bytes for memory) over the smallest size's"
    return _titled(title, _table(header, body))


def _variants_table(table_rows: Sequence[Row]) -> str:
    header = ["scenario", "size", "metric", "variant", "median", "trio_tasks/variant", "excl. GC"]
    body = [
        [row.metric.scenario, row.label, f"{row.metric.name} [{row.metric.unit}]", impl,
         _fmt(row.medians[impl] * row.metric.scale), f"{row.ratios[impl]:.2f}x",
         f"{row.ratios_nogc[impl]:.2f}x" if row.metric.timed else ""]
        for row in table_rows
        for impl in row.medians
        if impl not in MAIN
    ]
    title = "Variants (information only; trio_tasks_unwatched: the unwatched scenario in the same repeats)"
    return _titled(title, _table(header, body)) if body else ""


NOTES = """\
{clock}.
Medians over repeats. Ratios are medians of per-repeat ratios, trio_tasks / baseline in the metric's own terms
(throughput: higher is better; time and memory: lower is better). Targets are checked on the numbers as measured;
"excl. GC" takes the cyclic garbage collector's time inside each span out (gc.callbacks), and "GC share" is the
median fraction of the span it took. Memory is tracemalloc: bytes still allocated after starting N parked tasks
(gc.collect() before and after), divided by N, from a separate traced run; times come from untraced runs."""


def render(table_rows: Sequence[Row], scaling: Sequence[ScalingRow], markdown: bool = False) -> str:
    """The text report: main table, scaling table, floor variants, notes (tables in Markdown if asked)."""
    Style.markdown = markdown
    parts = [_main_table(table_rows)]
    if scaling:
        parts.append(_scaling_table(scaling))
    variants = _variants_table(table_rows)
    if variants:
        parts.append(variants)
    clock = "Times are process CPU time (--clock cpu)" if Clock.cpu else "Times are wall time (perf_counter)"
    parts.append(NOTES.format(clock=clock))
    return "\n\n".join(parts)


RESULTS_BEGIN = "<!-- benchmark results: begin (generated by python -m benchmarks --write-into; do not edit) -->"
"""The line after which ``--write-into`` writes the tables."""
RESULTS_END = "<!-- benchmark results: end -->"
"""The line before which the tables written by ``--write-into`` end."""


class MarkerError(ValueError):
    """A file given to ``--write-into`` lacks a marker line, or has one twice, or has them in the wrong order."""


def _marker_lines(lines: Sequence[str], marker: str) -> list[int]:
    return [number for number, line in enumerate(lines) if line.strip() == marker]


def replace_results(text: str, results: str, where: str = "the file") -> str:
    """``text`` with whatever is between the line ``RESULTS_BEGIN`` and the line ``RESULTS_END`` replaced by
    ``results`` (set off by blank lines); the marker lines and everything outside them are kept as they are.

    ``where`` names the file in the :class:`MarkerError` raised when a marker is missing, repeated or misplaced.
    """
    lines = text.splitlines(keepends=True)
    begins, ends = _marker_lines(lines, RESULTS_BEGIN), _marker_lines(lines, RESULTS_END)
    missing = [marker for marker, found in ((RESULTS_BEGIN, begins), (RESULTS_END, ends)) if not found]
    if missing:
        raise MarkerError(f"{where} has no marker line {' and no marker line '.join(missing)}")
    for marker, found in ((RESULTS_BEGIN, begins), (RESULTS_END, ends)):
        if len(found) > 1:
            raise MarkerError(f"{where} has the marker line {marker} {len(found)} times (lines "
                              f"{', '.join(str(number + 1) for number in found)}); it must have it once")
    begin, end = begins[0], ends[0]
    if end < begin:
        raise MarkerError(f"{where} has the marker line {RESULTS_END} (line {end + 1}) before "
                          f"{RESULTS_BEGIN} (line {begin + 1})")
    return f"{''.join(lines[: begin + 1])}\n{results.strip()}\n\n{''.join(lines[end:])}"


def write_into(path: str, results: str) -> None:
    """Replace the text between the marker lines of the file at ``path`` by ``results`` (see
    :func:`replace_results`), keeping the rest of the file byte for byte.

    Raises:
        OSError: the file cannot be read or written.
        MarkerError: the file lacks a marker line, has one twice, or has them in the wrong order.
    """
    with open(path, encoding="utf-8", newline="") as file:  # newline="": line endings kept as they are
        text = file.read()
    replaced = replace_results(text, results, path)
    if replaced != text:
        with open(path, "w", encoding="utf-8", newline="") as file:
            file.write(replaced)


def machine() -> dict[str, Any]:
    """The machine the numbers come from."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpus": cpus,
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "trio": trio.__version__,
        "platform": platform.platform(),
    }


def _check_json(checks: Sequence[Check]) -> list[dict[str, Any]]:
    return [{"baseline": t.baseline, "bound": t.bound, "ratio": ratio, "passed": ok} for t, ratio, ok in checks]


def to_json(series: Sequence[Series], table_rows: Sequence[Row], scaling: Sequence[ScalingRow],
            meta: dict[str, Any]) -> dict[str, Any]:
    """Every raw repeat, the medians, the ratios and the target checks, for tools."""
    return {
        **meta,
        "clock": "process_time" if Clock.cpu else "perf_counter",
        "machine": machine(),
        "memory_method": "tracemalloc: bytes still allocated after starting N parked tasks (gc.collect() before "
                         "and after), divided by N, from a separate traced run",
        "series": [
            {
                "scenario": s.scenario,
                "size": s.size,
                "impl": s.impl,
                "repeats": [vars(sample) for sample in s.samples],
                "median_seconds": s.median_seconds(),
                "median_seconds_per_unit": statistics.median(s.per_unit),
                "median_gc_seconds": statistics.median(sample.gc_seconds for sample in s.samples),
                "median_cpu_seconds": statistics.median(sample.cpu_seconds for sample in s.samples),
                "median_bytes_per_task": statistics.median(s.bytes_per_task) if s.bytes_per_task else None,
            }
            for s in series
        ],
        "rows": [
            {
                "scenario": row.metric.scenario,
                "size": row.size,
                "metric": row.metric.name,
                "unit": row.metric.unit,
                "scale": row.metric.scale,
                "higher_is_better": row.metric.higher_is_better,
                "medians": row.medians,
                "ratios": row.ratios,
                "ratios_excl_gc": row.ratios_nogc,
                "gc_share": row.gc_share,
                "targets": _check_json(row.checks),
                "targets_excl_gc": _check_json(row.checks_nogc) if row.metric.timed else None,
            }
            for row in table_rows
        ],
        "scaling": [
            {"scenario": s.metric.scenario, "metric": s.metric.name, "size": s.size, "base_size": s.base_size,
             "ratios": s.ratios, "ratios_excl_gc": s.ratios_nogc if s.metric.timed else None,
             "bound": SCALING_BOUND, "passed": s.passed, "passed_excl_gc": s.passed_nogc if s.metric.timed else None}
            for s in scaling
        ],
        "all_passed": all(ok for row in table_rows for _, _, ok in row.checks) and all(s.passed for s in scaling),
    }


def write_json(path: str, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON."""
    Path(path).write_text(json.dumps(data, indent=2) + "\n")
