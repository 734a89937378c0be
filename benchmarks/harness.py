"""Running the suite: which implementation runs which scenario, repeats, interleaving, medians.

Within each (scenario, size), every repeat runs every implementation once, in
a fixed order (trio_tasks, floor, asyncio if the scenario has it, then the
variants), each in a fresh ``trio.run`` / ``asyncio.run``, with a full garbage
collection before each run: machine noise hits them alike, and ratios are
taken between runs of the same repeat.
"""

from __future__ import annotations

import gc
import statistics
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import asyncio_ref, floor, floor_watched, scenarios
from .common import Sample, default_repeats

__all__ = ["IMPLEMENTATIONS", "MAIN", "Series", "run_suite"]

Runner = Callable[..., Sample]
"""Takes the size (and, for idle, ``trace``: whether to also measure memory) and returns one Sample."""

MAIN = ("trio_tasks", "floor", "asyncio")
"""The implementations the scenarios compare (every scenario has the first two); the others are variants,
for information."""

IMPLEMENTATIONS: dict[str, dict[str, Runner]] = {
    "spawn": {
        "trio_tasks": scenarios.spawn,
        "floor": floor.spawn,
        "asyncio": asyncio_ref.spawn,
        "floor_checkpoint": floor.spawn_checkpoint,
        "floor_nocheckpoint": floor.spawn_nocheckpoint,
    },
    "spawn_watched": {
        "trio_tasks": scenarios.spawn_watched,
        "floor": floor_watched.spawn_watched,
        "trio_tasks_unwatched": scenarios.spawn,
    },
    "idle": {
        "trio_tasks": scenarios.idle,
        "floor": floor.idle,
        "asyncio": asyncio_ref.idle,
        "floor_checkpoint": floor.idle_checkpoint,
        "floor_nocheckpoint": floor.idle_nocheckpoint,
    },
    "notify": {"trio_tasks": scenarios.notify, "floor": floor.notify, "asyncio": asyncio_ref.notify},
    "stop_all": {
        "trio_tasks": scenarios.stop_all,
        "floor": floor.stop_all,
        "asyncio": asyncio_ref.stop_all,
        "floor_shared_scope": floor.stop_all_shared_scope,
    },
    "progress": {"trio_tasks": scenarios.progress, "floor": floor.progress, "asyncio": asyncio_ref.progress},
    "progress_watched": {
        "trio_tasks": scenarios.progress_watched,
        "floor": floor_watched.progress_watched,
        "trio_tasks_unwatched": scenarios.progress,
    },
}
"""Scenario -> implementation name -> runner taking the size and returning one :class:`Sample`.

The asyncio reference has no watch API, so the watched scenarios have no asyncio runner; they run the
unwatched trio_tasks scenario in the same repeats instead (``trio_tasks_unwatched``, information only),
for the cost of watching."""


@dataclass
class Series:
    """Every repeat of one implementation on one (scenario, size)."""

    scenario: str
    size: int
    impl: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def seconds(self) -> list[float]:
        """The timed span of each repeat."""
        return [sample.seconds for sample in self.samples]

    @property
    def per_unit(self) -> list[float]:
        """Seconds per unit (task, or progress update) of each repeat."""
        return [sample.seconds / sample.units for sample in self.samples]

    @property
    def bytes_per_task(self) -> list[float]:
        """Idle only: tracemalloc bytes per parked task of each repeat."""
        return [sample.bytes_per_task for sample in self.samples if sample.bytes_per_task is not None]

    def median_seconds(self) -> float:
        """The median timed span."""
        return statistics.median(self.seconds)


def run_suite(
    chosen: Iterable[str],
    sizes: Iterable[int],
    repeat: int | None,
    log: Callable[[str], object] = print,
    memory_repeats: int = 1,
) -> list[Series]:
    """Run every chosen scenario at every size, ``repeat`` times, implementations interleaved.

    With ``repeat=None`` each size runs :func:`~benchmarks.common.default_repeats` times.

    Idle memory (a second, traced run) is measured in the first ``memory_repeats`` repeats only, and
    for the :data:`MAIN` implementations only: tracemalloc's count is deterministic here, and the
    traced run is the slowest part of the suite.
    """
    results: list[Series] = []
    for scenario in chosen:
        impls = IMPLEMENTATIONS[scenario]
        for size in sizes:
            series = {name: Series(scenario, size, name) for name in impls}
            repeats = default_repeats(size) if repeat is None else repeat
            for r in range(repeats):
                for name, runner in impls.items():
                    gc.collect()
                    # Memory is traced for the main implementations only: a variant's is of no interest.
                    kwargs = {"trace": r < memory_repeats and name in MAIN} if scenario == "idle" else {}
                    series[name].samples.append(runner(size, **kwargs))
                log(f"  {scenario} size={size} repeat {r + 1}/{repeats}: " + ", ".join(
                    f"{name} {series[name].samples[-1].seconds * 1e3:.1f} ms" for name in impls
                ))
            results.extend(series.values())
            gc.collect()
    return results


def stderr_log(line: str) -> None:
    """Progress lines go to stderr, the table to stdout."""
    print(line, file=sys.stderr, flush=True)
