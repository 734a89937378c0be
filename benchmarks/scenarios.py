"""The scenarios run by trio_tasks itself, through its public API only.

Every run opens a fresh ``trio.run`` and one ``open_task_manager(history_limit=n)``
(so ``get_state`` keeps every task's terminal, like the floor's dict of
states), starts tasks with ``await manager.start(...)``, reaches them with
``handle.notify(...)`` on the handles ``start`` returned (as the floor and
the asyncio reference do) and stops them with
``await manager.stop_all()``.
"""

from __future__ import annotations

from typing import Any

import trio

from trio_tasks import AsyncTaskHandle, Plugin, TaskEvents, TaskManager, TaskSignal, open_task_manager

from .common import (
    CHAT_KEY,
    PROGRESS_TASKS,
    WAIT_KEY,
    BenchmarkError,
    MemoryProbe,
    Sample,
    Span,
    Terminals,
    check_watched,
    idle_body,
    progress_body,
    settle,
    spawn_body,
    task_ids,
    timed_and_traced,
)

__all__ = ["idle", "notify", "progress", "progress_watched", "spawn", "spawn_watched", "stop_all"]

plugin = Plugin(name="Benchmarks", module_name="benchmarks")
plugin.mount_async_task("spawn")(spawn_body)
plugin.mount_async_task("idle")(idle_body)
plugin.mount_async_task("progress")(progress_body)

_SUCCESS = TaskSignal.SUCCESS
_CANCEL = TaskSignal.CANCEL


def spawn(n: int) -> Sample:
    """Start ``n`` tasks that report once and succeed; time from the first start to the last callback."""
    return trio.run(_spawn, n)


async def _spawn(n: int) -> Sample:
    ids = task_ids(n)
    done = trio.Event()
    terminals = Terminals(n, _SUCCESS, done.set)
    async with open_task_manager(history_limit=n) as manager:
        start = manager.start
        span = Span()
        for task_id in ids:
            await start("spawn", task_id, CHAT_KEY, plugin, on_terminal=terminals)
        await done.wait()
        span.stop_at_done(terminals)
    terminals.check("trio_tasks spawn")
    return span.sample(terminals, n)


async def _start_parked(manager: TaskManager, ids: list[str], terminals: Terminals) -> list[AsyncTaskHandle]:
    start = manager.start
    return [await start("idle", task_id, CHAT_KEY, plugin, on_terminal=terminals) for task_id in ids]


def _notify_all(handles: list[AsyncTaskHandle]) -> None:
    """Notify each task through the handle its start returned, as the floor does."""
    for handle in handles:
        handle.notify(WAIT_KEY)


def idle(n: int, trace: bool = True) -> Sample:
    """Start ``n`` tasks parked in ``handle.wait``: time to start them all, and tracemalloc bytes per task."""
    return timed_and_traced(lambda size, traced: trio.run(_idle, size, traced), n, trace)


async def _idle(n: int, trace: bool) -> Sample:
    ids = task_ids(n)
    done = trio.Event()
    terminals = Terminals(n, _SUCCESS, done.set)
    probe = MemoryProbe(trace)
    async with open_task_manager(history_limit=n) as manager:
        probe.begin()
        span = Span()
        handles = await _start_parked(manager, ids, terminals)
        span.stop()
        bytes_per_task = probe.end(n)
        _notify_all(handles)
        await done.wait()
    terminals.check("trio_tasks idle")
    return span.sample(terminals, n, bytes_per_task)


def notify(n: int) -> Sample:
    """``n`` parked tasks; time from the first ``notify`` until the last callback."""
    return trio.run(_notify, n)


async def _notify(n: int) -> Sample:
    ids = task_ids(n)
    done = trio.Event()
    terminals = Terminals(n, _SUCCESS, done.set)
    async with open_task_manager(history_limit=n) as manager:
        handles = await _start_parked(manager, ids, terminals)
        settle()
        span = Span()
        _notify_all(handles)
        await done.wait()
        span.stop_at_done(terminals)
    terminals.check("trio_tasks notify")
    return span.sample(terminals, n)


def stop_all(n: int) -> Sample:
    """``n`` parked tasks; time for ``stop_all`` to return (every callback has fired by then)."""
    return trio.run(_stop_all, n)


async def _stop_all(n: int) -> Sample:
    ids = task_ids(n)
    terminals = Terminals(n, _CANCEL, lambda: None)
    async with open_task_manager(history_limit=n) as manager:
        await _start_parked(manager, ids, terminals)
        settle()
        span = Span()
        stopped = await manager.stop_all()
        span.stop()
        fired = terminals.count
    terminals.check("trio_tasks stop_all")
    if stopped != n or fired != n:
        raise BenchmarkError(f"stop_all returned {stopped} with {fired} of {n} callbacks fired")
    return span.sample(terminals, n)


def progress(updates: int) -> Sample:
    """PROGRESS_TASKS tasks each yielding ``updates`` progress reports; time to the last callback."""
    return trio.run(_progress, updates)


async def _progress(updates: int) -> Sample:
    ids = task_ids(PROGRESS_TASKS)
    done = trio.Event()
    terminals = Terminals(PROGRESS_TASKS, _SUCCESS, done.set)
    async with open_task_manager(history_limit=PROGRESS_TASKS) as manager:
        start = manager.start
        span = Span()
        for task_id in ids:
            await start("progress", task_id, CHAT_KEY, plugin, updates, on_terminal=terminals)
        await done.wait()
        span.stop_at_done(terminals)
    terminals.check("trio_tasks progress")
    return span.sample(terminals, PROGRESS_TASKS * updates)


def spawn_watched(n: int) -> Sample:
    """:func:`spawn` with one watcher per task, subscribed before its start; see :func:`_watched`."""
    return trio.run(_watched, "spawn", task_ids(n), (), 1)


def progress_watched(updates: int) -> Sample:
    """:func:`progress` with one watcher per task, subscribed before its start; see :func:`_watched`."""
    return trio.run(_watched, "progress", task_ids(PROGRESS_TASKS), (updates,), updates)


async def _watched(task_type: str, ids: list[str], args: tuple[Any, ...], updates: int) -> Sample:
    """Per task: ``manager.watch(task_type, task_id)`` entered (default buffer), then ``start``.

    Nothing reads during the span (first subscribe to the last callback), so each watcher buffers up to
    256 progress events and drops the older ones. After the span every watcher is read to its end and
    checked (:func:`check_watched`): ``updates`` progress reports per task, read or dropped, then the terminal.
    """
    n = len(ids)
    done = trio.Event()
    terminals = Terminals(n, _SUCCESS, done.set)
    watchers: list[TaskEvents] = []
    what = f"trio_tasks {task_type}_watched"
    async with open_task_manager(history_limit=n) as manager:
        start = manager.start
        watch = manager.watch
        try:
            span = Span()
            for task_id in ids:
                events = watch(task_type, task_id)
                await events.__aenter__()
                watchers.append(events)
                await start(task_type, task_id, CHAT_KEY, plugin, *args, on_terminal=terminals)
            await done.wait()
            span.stop_at_done(terminals)
            for task_id, events in zip(ids, watchers, strict=True):
                read = [event async for event in events]
                if any(event.task_id != task_id for event in read):
                    raise BenchmarkError(f"{what}: the watcher of {task_id} saw another task's event")
                check_watched(f"{what} {task_id}", [event.ctl for event in read], events.dropped, updates)
        finally:
            for events in watchers:
                await events.__aexit__(None, None, None)
    terminals.check(what)
    return span.sample(terminals, n * updates if task_type == "progress" else n)
