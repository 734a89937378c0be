"""The floor: the same work as trio_tasks, with bare Trio and nothing else.

This is the limit the library can approach. Per task the floor has exactly:

- one :class:`trio.CancelScope` of its own, the task running inside it;
- one :class:`trio.Event` per wait (a fresh one each ``wait``, set by ``notify``);
- one entry in a dict of latest states, keyed ``(task_type, task_id)``: each
  progress report, then the terminal TaskCtl (kept after the task ends);
- a terminal callback, called exactly once (also when cancelled: CANCEL);
- the task body (the same async generator as trio_tasks runs) driven with
  ``async for`` and closed with ``aclose``, as correct Trio code must.

Tasks are spawned with ``nursery.start_soon`` into one nursery held open for
them (as the library's tasks live in a nursery of its own). ``trio_tasks``'
``start`` is awaited and returns only once the task's body has begun, so the
floor's start gives the same guarantee the cheapest way bare Trio allows: the
starter parks (``trio.lowlevel.wait_task_rescheduled``) and the new task's
first step reschedules it (the idiomatic ``nursery.start`` costs more). Two
variants are kept for information only: ``floor_checkpoint`` awaits one
checkpoint after each ``start_soon`` instead, which is cheaper but lets the
starter resume before the task has begun in about half of the starts (Trio
runs each batch of runnable tasks in random order), and
``floor_nocheckpoint`` does not yield per start at all.

To stop N tasks the floor cancels each task's own scope in turn, then waits
once for all to end ("cancelling one scope per task in turn"); the
``floor_shared_scope`` variant cancels the tasks' shared parent nursery scope
instead (for information only).

The floor does nothing the scenarios do not need, which only makes it harder
to match: no argument checks, no duplicate-id check, no history bound, no
check that a yielded value is a TaskCtl, one wait point per task (a key is
accepted but not used), notify reaches a task through the object its start
returned rather than by id, and a notify sent before the wait is not kept.

The floor of the watched scenarios (spawn and progress with one watcher per
task) is in :mod:`benchmarks.floor_watched`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Literal

import trio

from trio_tasks import TaskCtl, TaskSignal

from .common import (
    PROGRESS_TASKS,
    WAIT_KEY,
    MemoryProbe,
    Sample,
    Span,
    Terminals,
    idle_body,
    progress_body,
    settle,
    spawn_body,
    task_ids,
    timed_and_traced,
)

__all__ = ["FloorTask", "hold_nursery", "idle", "idle_checkpoint", "idle_nocheckpoint", "notify", "progress",
           "run_task", "spawn", "spawn_checkpoint", "spawn_nocheckpoint", "start_all", "stop_all",
           "stop_all_shared_scope"]

_PROGRESS = TaskSignal.PROGRESS
_SUCCESS = TaskSignal.SUCCESS
_CANCEL = TaskSignal.CANCEL
_CANCELLED = TaskCtl.cancel("Cancelled")
_checkpoint = trio.lowlevel.checkpoint
_current_task = trio.lowlevel.current_task
_reschedule = trio.lowlevel.reschedule
_wait_task_rescheduled = trio.lowlevel.wait_task_rescheduled
Key = tuple[str, str]
StartMode = Literal["handoff", "checkpoint", "none"]
OnTerminal = Callable[[TaskCtl], object]
Runner = Callable[..., Awaitable[None]]


class FloorTask:
    """A task's own state on the floor: its key, its cancel scope, and its current wait point."""

    __slots__ = ("event", "key", "scope", "value")

    def __init__(self, key: Key) -> None:
        self.key = key
        self.scope = trio.CancelScope()
        self.event: trio.Event | None = None
        self.value: Any = None

    async def wait(self, key: str) -> Any:
        """Park on a fresh Event until :meth:`notify`."""
        event = self.event = trio.Event()
        await event.wait()
        return self.value

    def notify(self, key: str, data: Any = None) -> None:
        """Resume the pending wait with ``data``."""
        self.value = data
        assert self.event is not None
        self.event.set()


async def run_task(
    starter: trio.lowlevel.Task | None,
    task: FloorTask,
    body: AsyncGenerator[TaskCtl, None],
    states: dict[Key, TaskCtl],
    on_terminal: OnTerminal,
) -> None:
    """Drive ``body`` inside the task's scope; record states; fire ``on_terminal`` exactly once.

    A ``starter`` parked until the task has begun is rescheduled first.
    """
    if starter is not None:
        _reschedule(starter)
    terminal = _CANCELLED
    try:
        with task.scope:
            try:
                async for item in body:
                    if item.signal is _PROGRESS:
                        states[task.key] = item
                        continue
                    terminal = item
                    break
            finally:
                await body.aclose()
    finally:
        states[task.key] = terminal
        on_terminal(terminal)


async def hold_nursery(*, task_status: trio.TaskStatus[trio.Nursery]) -> None:
    """Open the nursery the tasks are spawned into, hand it over, and keep it open until cancelled."""
    async with trio.open_nursery() as nursery:
        task_status.started(nursery)
        await trio.sleep_forever()


async def start_all(
    nursery: trio.Nursery,
    task_type: str,
    ids: list[str],
    body: Callable[..., AsyncGenerator[TaskCtl, None]],
    args: tuple[Any, ...],
    states: dict[Key, TaskCtl],
    on_terminal: OnTerminal,
    how: StartMode,
    runner: Runner = run_task,
    task_class: type[FloorTask] = FloorTask,
) -> list[FloorTask]:
    """Start one task per id: a scope and ``start_soon`` each, then per ``how`` (see the module docstring).

    Each task is a ``task_class`` run by ``runner`` (which takes :func:`run_task`'s arguments).
    """
    tasks = []
    start_soon = nursery.start_soon
    for task_id in ids:
        task = task_class((task_type, task_id))
        if how == "handoff":
            start_soon(runner, _current_task(), task, body(task, *args), states, on_terminal)
            await _wait_task_rescheduled(_refuse_abort)
        else:
            start_soon(runner, None, task, body(task, *args), states, on_terminal)
            if how == "checkpoint":
                await _checkpoint()
        tasks.append(task)
    if how != "handoff":
        # Trio runs a batch of runnable tasks in either order, so the task that checkpoints may
        # resume before the tasks it spawned have run; one checkpoint later they all have (two
        # without the per-start checkpoints). Then every task has run to its first blocking point.
        await _checkpoint()
        if how == "none":
            await _checkpoint()
    return tasks


def _refuse_abort(raise_cancel: object) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED


def spawn(n: int, how: StartMode = "handoff") -> Sample:
    """Start ``n`` tasks that report once and succeed; time from the first start to the last callback."""
    return trio.run(_spawn, n, how)


def spawn_checkpoint(n: int) -> Sample:
    """:func:`spawn` with a checkpoint after each ``start_soon`` instead of the handoff."""
    return spawn(n, "checkpoint")


def spawn_nocheckpoint(n: int) -> Sample:
    """:func:`spawn` without yielding per start."""
    return spawn(n, "none")


async def _spawn(n: int, how: StartMode) -> Sample:
    ids = task_ids(n)
    done = trio.Event()
    terminals = Terminals(n, _SUCCESS, done.set)
    states: dict[Key, TaskCtl] = {}
    async with trio.open_nursery() as outer:
        nursery = await outer.start(hold_nursery)
        span = Span()
        await start_all(nursery, "spawn", ids, spawn_body, (), states, terminals, how)
        await done.wait()
        span.stop_at_done(terminals)
        outer.cancel_scope.cancel()
    terminals.check("floor spawn")
    return span.sample(terminals, n)


def idle(n: int, trace: bool = True, how: StartMode = "handoff") -> Sample:
    """Start ``n`` tasks parked on a wait: time to start them all, and tracemalloc bytes per task."""
    return timed_and_traced(lambda size, traced: trio.run(_idle, size, traced, how), n, trace)


def idle_checkpoint(n: int, trace: bool = True) -> Sample:
    """:func:`idle` with a checkpoint after each ``start_soon`` instead of the handoff."""
    return idle(n, trace, "checkpoint")


def idle_nocheckpoint(n: int, trace: bool = True) -> Sample:
    """:func:`idle` without yielding per start."""
    return idle(n, trace, "none")


async def _idle(n: int, trace: bool, how: StartMode) -> Sample:
    ids = task_ids(n)
    done = trio.Event()
    terminals = Terminals(n, _SUCCESS, done.set)
    states: dict[Key, TaskCtl] = {}
    probe = MemoryProbe(trace)
    async with trio.open_nursery() as outer:
        nursery = await outer.start(hold_nursery)
        probe.begin()
        span = Span()
        tasks = await start_all(nursery, "idle", ids, idle_body, (), states, terminals, how)
        span.stop()
        bytes_per_task = probe.end(n)
        for task in tasks:
            task.notify(WAIT_KEY)
        await done.wait()
        outer.cancel_scope.cancel()
    terminals.check("floor idle")
    return span.sample(terminals, n, bytes_per_task)


def notify(n: int) -> Sample:
    """``n`` parked tasks; time from the first notify until the last callback."""
    return trio.run(_notify, n)


async def _notify(n: int) -> Sample:
    ids = task_ids(n)
    done = trio.Event()
    terminals = Terminals(n, _SUCCESS, done.set)
    states: dict[Key, TaskCtl] = {}
    async with trio.open_nursery() as outer:
        nursery = await outer.start(hold_nursery)
        tasks = await start_all(nursery, "idle", ids, idle_body, (), states, terminals, "handoff")
        settle()
        span = Span()
        for task in tasks:
            task.notify(WAIT_KEY)
        await done.wait()
        span.stop_at_done(terminals)
        outer.cancel_scope.cancel()
    terminals.check("floor notify")
    return span.sample(terminals, n)


def stop_all(n: int, shared_scope: bool = False) -> Sample:
    """``n`` parked tasks; cancel each task's scope in turn (or their shared parent scope), wait for all."""
    return trio.run(_stop_all, n, shared_scope)


def stop_all_shared_scope(n: int) -> Sample:
    """:func:`stop_all` cancelling the tasks' shared parent nursery scope."""
    return stop_all(n, True)


async def _stop_all(n: int, shared_scope: bool) -> Sample:
    ids = task_ids(n)
    done = trio.Event()
    terminals = Terminals(n, _CANCEL, done.set)
    states: dict[Key, TaskCtl] = {}
    async with trio.open_nursery() as outer:
        nursery = await outer.start(hold_nursery)
        tasks = await start_all(nursery, "idle", ids, idle_body, (), states, terminals, "handoff")
        settle()
        span = Span()
        if shared_scope:
            nursery.cancel_scope.cancel()
        else:
            for task in tasks:
                task.scope.cancel()
        await done.wait()
        span.stop()
        outer.cancel_scope.cancel()
    terminals.check("floor stop_all")
    return span.sample(terminals, n)


def progress(updates: int) -> Sample:
    """PROGRESS_TASKS tasks each yielding ``updates`` progress reports; time to the last callback."""
    return trio.run(_progress, updates)


async def _progress(updates: int) -> Sample:
    ids = task_ids(PROGRESS_TASKS)
    done = trio.Event()
    terminals = Terminals(PROGRESS_TASKS, _SUCCESS, done.set)
    states: dict[Key, TaskCtl] = {}
    async with trio.open_nursery() as outer:
        nursery = await outer.start(hold_nursery)
        span = Span()
        await start_all(nursery, "progress", ids, progress_body, (updates,), states, terminals, "handoff")
        await done.wait()
        span.stop_at_done(terminals)
        outer.cancel_scope.cancel()
    terminals.check("floor progress")
    return span.sample(terminals, PROGRESS_TASKS * updates)
