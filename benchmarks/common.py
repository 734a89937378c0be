"""What every implementation shares: sizes, task bodies, the callback counter and one run's result.

The three implementations (trio_tasks, the bare-Trio floor, the asyncio
reference) run the *same* task bodies, defined here. The bodies yield
pre-built :class:`TaskCtl` values, so that what a benchmark measures is the
machinery around a body, not the cost of building a value object (which the
user pays identically under every implementation).
"""

from __future__ import annotations

import cProfile
import gc
import tracemalloc
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from time import perf_counter, process_time
from typing import Any, Protocol

from trio_tasks import TaskCtl, TaskSignal

__all__ = [
    "CHAT_KEY",
    "PROGRESS",
    "PER_UPDATE",
    "PROGRESS_TASKS",
    "SCENARIOS",
    "SIZES",
    "default_repeats",
    "SUCCESS",
    "WAIT_KEY",
    "WATCH_BUFFER",
    "BenchmarkError",
    "GcClock",
    "MemoryProbe",
    "Sample",
    "Span",
    "SpanProfiler",
    "Terminals",
    "Waiter",
    "check_watched",
    "gc_clock",
    "settle",
    "idle_body",
    "progress_body",
    "spawn_body",
    "task_ids",
    "timed_and_traced",
]

SCENARIOS = ("spawn", "spawn_watched", "idle", "notify", "stop_all", "progress", "progress_watched")
"""Every scenario, in the order they run."""

PER_UPDATE = frozenset({"progress", "progress_watched"})
"""The scenarios whose size is the progress updates per task (of PROGRESS_TASKS tasks), not a task count."""

SIZES: dict[str, tuple[int, ...]] = {
    "tiny": (10, 100),  # the smoke test's size: checks the suite runs, measures nothing
    "small": (1_000, 10_000),
    "large": (1_000, 10_000, 100_000),
}
"""Task counts per ``--size``. For ``progress`` a size is the updates per task (of PROGRESS_TASKS tasks)."""


def default_repeats(size: int) -> int:
    """Repeats per implementation at ``size`` when ``--repeat`` is not given.

    Short spans are the noisiest and cheapest, long ones the reverse: 7 repeats up to 10k, 3 at 100k. This keeps
    ``python -m benchmarks --size large`` under the issue's 10 minutes on a 2-core machine (about 8).
    """
    return 7 if size <= 10_000 else 3

PROGRESS_TASKS = 100
CHAT_KEY = "bench-chat"
WAIT_KEY = "go"
PROGRESS = TaskCtl.report_progress("working", 50)
SUCCESS = TaskCtl.success("done")
WATCH_BUFFER = 256
"""The watched scenarios' bound on unread progress updates per watcher (``manager.watch``'s default)."""


class BenchmarkError(RuntimeError):
    """A run did not do the work it claims: wrong callback count or signal. Not a number to report."""


class Waiter(Protocol):
    """What a task body needs from its handle: a wait point (every implementation provides one)."""

    async def wait(self, key: str) -> Any: ...


async def spawn_body(handle: Waiter) -> AsyncGenerator[TaskCtl, None]:
    """The spawn scenario's body: one progress report, then success."""
    yield PROGRESS
    yield SUCCESS


async def idle_body(handle: Waiter) -> AsyncGenerator[TaskCtl, None]:
    """The idle/notify/stop_all body: park on one wait point, then succeed once notified."""
    await handle.wait(WAIT_KEY)
    yield SUCCESS


async def progress_body(handle: Waiter, updates: int) -> AsyncGenerator[TaskCtl, None]:
    """The progress body: ``updates`` progress reports back to back, then success."""
    for _ in range(updates):
        yield PROGRESS
    yield SUCCESS


def check_watched(what: str, ctls: Sequence[TaskCtl], dropped: int, updates: int) -> None:
    """Raise :class:`BenchmarkError` unless a task's watcher read its progress reports and then exactly one
    terminal (SUCCESS), last, and the progress it read plus the progress it dropped is the ``updates`` made."""
    progress = [ctl for ctl in ctls[:-1] if ctl.signal is TaskSignal.PROGRESS]
    if not ctls or ctls[-1].signal is not TaskSignal.SUCCESS or len(progress) != len(ctls) - 1:
        raise BenchmarkError(f"{what}: the watcher did not end with exactly one SUCCESS event, last: "
                             f"{[ctl.signal.value for ctl in ctls[-3:]]} at the end of {len(ctls)}")
    if len(progress) + dropped != updates:
        raise BenchmarkError(f"{what}: the watcher read {len(progress)} progress events and dropped {dropped}, "
                             f"but the task reported {updates}")
    if len(progress) > WATCH_BUFFER:
        raise BenchmarkError(f"{what}: {len(progress)} unread progress events waited, more than {WATCH_BUFFER}")


def task_ids(n: int) -> list[str]:
    """The ids of ``n`` tasks, built before any timing starts."""
    return [f"T{i}" for i in range(n)]


@dataclass
class Sample:
    """The result of one run of one scenario by one implementation.

    Attributes:
        seconds: the timed span (what it spans depends on the scenario).
        units: what ``seconds`` is divided by for a per-unit cost: tasks, or progress updates.
        tasks: how many tasks the run started.
        callbacks: how many terminal callbacks fired (checked equal to ``tasks``).
        gc_seconds: how much of ``seconds`` the cyclic garbage collector took.
        cpu_seconds: the process CPU time (``time.process_time``) over the same span: unlike
            ``seconds`` it leaves out time the process spent preempted by others.
        bytes_per_task: idle only: tracemalloc bytes allocated per live parked task.
    """

    seconds: float
    units: int
    tasks: int
    callbacks: int
    gc_seconds: float = 0.0
    bytes_per_task: float | None = None
    cpu_seconds: float = 0.0


class Terminals:
    """The terminal callback every implementation is given: counts calls, checks the signal,
    and records the time (``perf_counter``) of the call that reaches ``expected``."""

    __slots__ = ("count", "cpu_at_done", "done", "done_at", "expected", "gc_at_done", "signal", "wrong")

    def __init__(self, expected: int, signal: TaskSignal, done: Callable[[], object]) -> None:
        self.expected = expected
        self.signal = signal
        self.done = done
        self.count = 0
        self.wrong = 0
        self.done_at = 0.0
        self.gc_at_done = 0.0
        self.cpu_at_done = 0.0

    def __call__(self, ctl: TaskCtl) -> None:
        """Record one terminal TaskCtl."""
        self.count += 1
        if ctl.signal is not self.signal:
            self.wrong += 1
        if self.count == self.expected:
            self.done_at = perf_counter()
            self.gc_at_done = gc_clock.total
            self.cpu_at_done = process_time()
            self.done()

    def check(self, what: str) -> None:
        """Raise :class:`BenchmarkError` unless every task fired exactly one callback with the expected signal."""
        if self.count != self.expected or self.wrong:
            raise BenchmarkError(
                f"{what}: expected {self.expected} terminal callbacks with signal {self.signal.value!r}, "
                f"got {self.count} ({self.wrong} with another signal)"
            )


class GcClock:
    """Accumulates the time CPython's cyclic garbage collector runs (via ``gc.callbacks``).

    Read :meth:`now` at both ends of a timed span: the difference is how much of
    that span the collector took. The hook is installed on first use.
    """

    __slots__ = ("began", "installed", "total")

    def __init__(self) -> None:
        self.total = 0.0
        self.began = 0.0
        self.installed = False

    def _hook(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.began = perf_counter()
        else:
            self.total += perf_counter() - self.began

    def now(self) -> float:
        """Seconds spent collecting so far."""
        if not self.installed:
            gc.callbacks.append(self._hook)
            self.installed = True
        return self.total


gc_clock = GcClock()
"""The process's one GC clock."""


class SpanProfiler:
    """When :attr:`profile` is set (``python -m benchmarks --profile``), it runs during timed spans only."""

    profile: cProfile.Profile | None = None


class Span:
    """One timed span: wall time (``perf_counter``) and GC time from construction to :meth:`stop`."""

    __slots__ = ("c0", "c1", "g0", "g1", "t0", "t1")

    def __init__(self) -> None:
        self.g0 = gc_clock.now()
        self.t1 = self.g1 = self.c1 = 0.0
        if SpanProfiler.profile is not None:
            SpanProfiler.profile.enable()
        self.c0 = process_time()
        self.t0 = perf_counter()

    def stop(self) -> None:
        """End the span now."""
        self.t1 = perf_counter()
        self.c1 = process_time()
        self.g1 = gc_clock.total
        if SpanProfiler.profile is not None:
            SpanProfiler.profile.disable()

    def stop_at_done(self, terminals: Terminals) -> None:
        """End the span at the terminal callback that reached the expected count."""
        self.t1 = terminals.done_at
        self.c1 = terminals.cpu_at_done
        self.g1 = terminals.gc_at_done
        if SpanProfiler.profile is not None:
            SpanProfiler.profile.disable()

    def sample(self, terminals: Terminals, units: int, bytes_per_task: float | None = None) -> Sample:
        """The run's result, once ``terminals`` has been checked."""
        return Sample(
            self.t1 - self.t0, units, terminals.expected, terminals.count, self.g1 - self.g0, bytes_per_task,
            self.c1 - self.c0,
        )


def settle() -> None:
    """Collect garbage before a timed span that follows an untimed set-up, so that no implementation's
    span pays for a full collection its set-up provoked."""
    gc.collect()


class MemoryProbe:
    """Measures tracemalloc bytes allocated between :meth:`begin` and :meth:`end` (live blocks only).

    Disabled probes cost nothing, so the timed run and the traced run share one code path.
    """

    __slots__ = ("before", "enabled")

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.before = 0

    def begin(self) -> None:
        """Start tracing and take the baseline (after a full collection)."""
        if self.enabled:
            tracemalloc.start()
            gc.collect()
            self.before = tracemalloc.get_traced_memory()[0]

    def end(self, n: int) -> float | None:
        """Stop tracing; the traced bytes still alive now, per each of ``n`` tasks (None if disabled)."""
        if not self.enabled:
            return None
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return (after - self.before) / n


def timed_and_traced(run: Callable[[int, bool], Sample], n: int, trace: bool) -> Sample:
    """Run the idle scenario once timed (no tracing, which would slow it) and, if ``trace``, once more
    under tracemalloc for its memory."""
    timed = run(n, False)
    if trace:
        timed.bytes_per_task = run(n, True).bytes_per_task
    return timed
