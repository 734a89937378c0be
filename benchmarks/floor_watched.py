"""The floor of the watched scenarios: the floor's spawn and progress with one subscriber per task.

The same work as ``manager.watch(task_type, task_id)`` entered before each
start, with bare Trio: each task carries a :class:`Subscriber` (created with
the task, before its start) holding a :class:`collections.deque` of records
``(task, ctl, now)`` (``now`` from the clock's ``current_time``, looked up
once per run as trio_tasks does). The runner appends one record on every
progress report and one on the terminal. When more than
:data:`~benchmarks.common.WATCH_BUFFER` progress records wait, the oldest is
dropped and counted; the terminal is never dropped (it is the task's last
record, so the oldest record is always a progress one when a drop is due).
Like a watcher, a subscriber checks on every record whether a reader waits
to be woken. Nothing reads during the timed span; afterwards every subscriber is checked
like trio_tasks' watchers (:func:`~benchmarks.common.check_watched`).

Everything else (scope, states dict, terminal callback, handoff start) is
:mod:`benchmarks.floor`'s.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, Callable
from typing import Any, cast

import trio

from trio_tasks import TaskCtl, TaskSignal

from .common import (
    PROGRESS_TASKS,
    WATCH_BUFFER,
    BenchmarkError,
    Sample,
    Span,
    Terminals,
    check_watched,
    progress_body,
    spawn_body,
    task_ids,
)
from .floor import FloorTask, Key, OnTerminal, hold_nursery, start_all

__all__ = ["Subscriber", "WatchedFloorTask", "progress_watched", "run_task_watched", "spawn_watched"]

_PROGRESS = TaskSignal.PROGRESS
_SUCCESS = TaskSignal.SUCCESS
_CANCELLED = TaskCtl.cancel("Cancelled")
_now: Callable[[], float] = trio.current_time  # the run's clock, looked up when each run begins
_reschedule = trio.lowlevel.reschedule
Record = tuple[FloorTask, TaskCtl, float]


class Subscriber:
    """One task's watcher: buffered records, at most WATCH_BUFFER of them progress, and a drop count."""

    __slots__ = ("dropped", "progress", "readers", "records")

    def __init__(self) -> None:
        self.records: deque[Record] = deque()
        self.progress = 0  # progress records in ``records``
        self.dropped = 0
        self.readers: list[trio.lowlevel.Task] = []  # readers waiting for a record (none in these scenarios)

    def _wake_readers(self) -> None:
        for reader in self.readers:
            _reschedule(reader)
        self.readers.clear()

    def push_progress(self, record: Record) -> None:
        """Buffer a progress record, dropping the oldest past WATCH_BUFFER."""
        records = self.records
        records.append(record)
        if self.progress < WATCH_BUFFER:
            self.progress += 1
        else:
            records.popleft()
            self.dropped += 1
        if self.readers:
            self._wake_readers()

    def push_terminal(self, record: Record) -> None:
        """Buffer the terminal record (never dropped)."""
        self.records.append(record)
        if self.readers:
            self._wake_readers()


class WatchedFloorTask(FloorTask):
    """A floor task with its subscriber."""

    __slots__ = ("subscriber",)

    def __init__(self, key: Key) -> None:
        super().__init__(key)
        self.subscriber = Subscriber()


async def run_task_watched(
    starter: trio.lowlevel.Task | None,
    task: WatchedFloorTask,
    body: AsyncGenerator[TaskCtl, None],
    states: dict[Key, TaskCtl],
    on_terminal: OnTerminal,
) -> None:
    """:func:`benchmarks.floor.run_task` that also hands every progress and the terminal to the subscriber."""
    if starter is not None:
        _reschedule(starter)
    subscriber = task.subscriber
    terminal = _CANCELLED
    try:
        with task.scope:
            try:
                async for item in body:
                    if item.signal is _PROGRESS:
                        states[task.key] = item
                        subscriber.push_progress((task, item, _now()))
                        continue
                    terminal = item
                    break
            finally:
                await body.aclose()
    finally:
        states[task.key] = terminal
        subscriber.push_terminal((task, terminal, _now()))
        on_terminal(terminal)


def spawn_watched(n: int) -> Sample:
    """The floor's spawn with a subscriber per task: time from the first start to the last callback."""
    return trio.run(_watched, "spawn", task_ids(n), spawn_body, (), 1)


def progress_watched(updates: int) -> Sample:
    """The floor's progress with a subscriber per task: time from the first start to the last callback."""
    return trio.run(_watched, "progress", task_ids(PROGRESS_TASKS), progress_body, (updates,), updates)


async def _watched(
    task_type: str,
    ids: list[str],
    body: Callable[..., AsyncGenerator[TaskCtl, None]],
    args: tuple[Any, ...],
    updates: int,
) -> Sample:
    global _now
    _now = trio.lowlevel.current_clock().current_time
    n = len(ids)
    done = trio.Event()
    terminals = Terminals(n, _SUCCESS, done.set)
    states: dict[Key, TaskCtl] = {}
    what = f"floor {task_type}_watched"
    async with trio.open_nursery() as outer:
        nursery = await outer.start(hold_nursery)
        span = Span()
        tasks = await start_all(nursery, task_type, ids, body, args, states, terminals, "handoff",
                                run_task_watched, WatchedFloorTask)
        await done.wait()
        span.stop_at_done(terminals)
        outer.cancel_scope.cancel()
    terminals.check(what)
    for task in cast(list[WatchedFloorTask], tasks):
        subscriber = task.subscriber
        if any(record[0] is not task for record in subscriber.records):
            raise BenchmarkError(f"{what}: the subscriber of {task.key[1]} holds another task's record")
        check_watched(f"{what} {task.key[1]}", [ctl for _, ctl, _ in subscriber.records], subscriber.dropped, updates)
    return span.sample(terminals, n * updates if task_type == "progress" else n)
