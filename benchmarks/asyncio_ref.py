"""The asyncio reference: the seed's API implemented the way the seed describes it.

What a user would run instead of trio_tasks, written from
``seed/async-tasks.md``: a singleton registry (the global ``task`` object)
holding a dict of :class:`asyncio.Task` by ``"task_type:task_id"``, a dict of
latest states and the handles; ``start`` creates the task with
``asyncio.create_task`` and returns at once; each handle keeps a dict of
:class:`asyncio.Future` per wait point, and ``wait`` is
``asyncio.wait_for(future, timeout)``; the runner iterates the body's async
generator, stores each TaskCtl as the latest state and calls ``on_terminal``
exactly once on success, failure or cancellation; ``cancel`` calls
``task.cancel()`` and awaits the task; ``stop_all`` cancels and awaits each
task in turn.

The scenario functions at the end run the same work as the trio_tasks and
floor scenarios, each in a fresh ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Any

from trio_tasks import TaskCtl, TaskSignal

from .common import (
    CHAT_KEY,
    PROGRESS_TASKS,
    WAIT_KEY,
    BenchmarkError,
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

__all__ = ["AsyncioPlugin", "AsyncTaskHandle", "TaskRegistry", "idle", "notify", "progress", "spawn", "stop_all",
           "task"]

logger = logging.getLogger("benchmarks.asyncio_ref")
OnTerminal = Callable[[TaskCtl], object]
TaskFunc = Callable[..., AsyncGenerator[TaskCtl, None]]


class AsyncioPlugin:
    """The seed's plugin, reduced to what tasks need: ``mount_async_task`` and a lookup."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tasks: dict[str, TaskFunc] = {}

    def mount_async_task(self, task_type: str) -> Callable[[TaskFunc], TaskFunc]:
        """Register the decorated async generator function as ``task_type``."""

        def decorate(func: TaskFunc) -> TaskFunc:
            self.tasks[task_type] = func
            return func

        return decorate


class AsyncTaskHandle:
    """The seed's task handle: identity, cancel flag and a dict of futures, one per wait point."""

    def __init__(self, task_type: str, task_id: str, chat_key: str, plugin: AsyncioPlugin) -> None:
        self.task_type = task_type
        self.task_id = task_id
        self.chat_key = chat_key
        self.plugin = plugin
        self._cancelled = False
        self._waits: dict[str, asyncio.Future[Any]] = {}

    @property
    def is_cancelled(self) -> bool:
        """True once a cancel has been requested."""
        return self._cancelled

    async def wait(self, key: str, timeout: float | None = None) -> Any:
        """Wait for ``notify(key, data)`` and return ``data``; None on timeout."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waits[key] = future
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            self._waits.pop(key, None)

    def notify(self, key: str, data: Any = None) -> bool:
        """Resume the wait point ``key`` with ``data``; False if nobody waits there."""
        future = self._waits.get(key)
        if future is None or future.done():
            return False
        future.set_result(data)
        return True

    def cancel_wait(self, key: str) -> bool:
        """Cancel the wait point ``key``."""
        future = self._waits.pop(key, None)
        return future is not None and future.cancel()

    def cancel_all(self) -> None:
        """Cancel every wait point and mark the task cancelled."""
        self._cancelled = True
        for future in self._waits.values():
            future.cancel()
        self._waits.clear()


class TaskRegistry:
    """The seed's global ``task`` object: a singleton registry of running asyncio tasks."""

    _instance: TaskRegistry | None = None

    def __new__(cls) -> TaskRegistry:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
            cls._instance._tasks = {}
            cls._instance._handles = {}
            cls._instance._states = {}
        return cls._instance

    _tasks: dict[str, asyncio.Task[None]]
    _handles: dict[str, AsyncTaskHandle]
    _states: dict[str, TaskCtl]

    def reset(self) -> None:
        """Forget everything (the benchmark runs each repeat in a fresh event loop)."""
        self._tasks.clear()
        self._handles.clear()
        self._states.clear()

    async def start(
        self,
        task_type: str,
        task_id: str,
        chat_key: str,
        plugin: AsyncioPlugin,
        *args: Any,
        on_terminal: OnTerminal | None = None,
        **kwargs: Any,
    ) -> AsyncTaskHandle:
        """Create the task (non-blocking) and return its handle."""
        key = f"{task_type}:{task_id}"
        running = self._tasks.get(key)
        if running is not None and not running.done():
            raise RuntimeError(f"task {key} is already running")
        func = plugin.tasks.get(task_type)
        if func is None:
            raise KeyError(f"plugin {plugin.name} has no task type {task_type}")
        handle = AsyncTaskHandle(task_type, task_id, chat_key, plugin)
        self._handles[key] = handle
        self._tasks[key] = asyncio.create_task(self._run(key, handle, func(handle, *args, **kwargs), on_terminal))
        return handle

    async def _run(
        self, key: str, handle: AsyncTaskHandle, body: AsyncGenerator[TaskCtl, None], on_terminal: OnTerminal | None
    ) -> None:
        terminal: TaskCtl | None = None
        try:
            async for ctl in body:
                self._states[key] = ctl
                if ctl.is_terminal:
                    terminal = ctl
                    break
            else:
                terminal = TaskCtl.success("Done")
        except asyncio.CancelledError:
            terminal = TaskCtl.cancel("Task cancelled")
            raise
        except Exception as exc:
            terminal = TaskCtl.fail(f"Error: {exc}", exc)
        finally:
            await body.aclose()
            if terminal is not None:
                self._states[key] = terminal
            self._tasks.pop(key, None)
            self._handles.pop(key, None)
            if on_terminal is not None and terminal is not None:
                try:
                    on_terminal(terminal)
                except Exception:
                    logger.exception("on_terminal callback of %s failed", key)

    def is_running(self, task_type: str, task_id: str) -> bool:
        """True while the task runs."""
        running = self._tasks.get(f"{task_type}:{task_id}")
        return running is not None and not running.done()

    def get_handle(self, task_type: str, task_id: str) -> AsyncTaskHandle | None:
        """The running task's handle."""
        return self._handles.get(f"{task_type}:{task_id}")

    def get_state(self, task_type: str, task_id: str) -> TaskCtl | None:
        """The task's latest TaskCtl."""
        return self._states.get(f"{task_type}:{task_id}")

    def get_running_tasks(self) -> list[str]:
        """The running tasks as ``"task_type:task_id"``."""
        return [key for key, running in self._tasks.items() if not running.done()]

    async def cancel(self, task_type: str, task_id: str) -> bool:
        """Cancel the task and await it; False if it is not running."""
        key = f"{task_type}:{task_id}"
        running = self._tasks.get(key)
        if running is None or running.done():
            return False
        handle = self._handles.get(key)
        if handle is not None:
            handle.cancel_all()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        return True

    async def stop_all(self) -> int:
        """Cancel and await every running task, one after the other; return how many."""
        count = 0
        for key in list(self._tasks):
            task_type, task_id = key.split(":", 1)
            if await self.cancel(task_type, task_id):
                count += 1
        return count


task = TaskRegistry()
plugin = AsyncioPlugin("Benchmarks")
plugin.mount_async_task("spawn")(spawn_body)
plugin.mount_async_task("idle")(idle_body)
plugin.mount_async_task("progress")(progress_body)

_SUCCESS = TaskSignal.SUCCESS
_CANCEL = TaskSignal.CANCEL


# -- the scenarios ----------------------------------------------------------------


def spawn(n: int) -> Sample:
    """Start ``n`` tasks that report once and succeed; time from the first start to the last callback."""
    return asyncio.run(_spawn(n))


async def _spawn(n: int) -> Sample:
    task.reset()
    ids = task_ids(n)
    done = asyncio.Event()
    terminals = Terminals(n, _SUCCESS, done.set)
    start = task.start
    span = Span()
    for task_id in ids:
        await start("spawn", task_id, CHAT_KEY, plugin, on_terminal=terminals)
    await done.wait()
    span.stop_at_done(terminals)
    terminals.check("asyncio spawn")
    return span.sample(terminals, n)


async def _start_parked(ids: list[str], terminals: Terminals) -> list[AsyncTaskHandle]:
    start = task.start
    handles = [await start("idle", task_id, CHAT_KEY, plugin, on_terminal=terminals) for task_id in ids]
    await asyncio.sleep(0)  # every task created above runs to its wait point
    return handles


def _notify_all(handles: list[AsyncTaskHandle]) -> None:
    """Notify each task through the handle its start returned, as the floor and trio_tasks do."""
    for handle in handles:
        handle.notify(WAIT_KEY)


def idle(n: int, trace: bool = True) -> Sample:
    """Start ``n`` tasks parked in ``handle.wait``: time to start them all, and tracemalloc bytes per task."""
    return timed_and_traced(lambda size, traced: asyncio.run(_idle(size, traced)), n, trace)


async def _idle(n: int, trace: bool) -> Sample:
    task.reset()
    ids = task_ids(n)
    done = asyncio.Event()
    terminals = Terminals(n, _SUCCESS, done.set)
    probe = MemoryProbe(trace)
    probe.begin()
    span = Span()
    handles = await _start_parked(ids, terminals)
    span.stop()
    bytes_per_task = probe.end(n)
    _notify_all(handles)
    await done.wait()
    terminals.check("asyncio idle")
    return span.sample(terminals, n, bytes_per_task)


def notify(n: int) -> Sample:
    """``n`` parked tasks; time from the first notify until the last callback."""
    return asyncio.run(_notify(n))


async def _notify(n: int) -> Sample:
    task.reset()
    ids = task_ids(n)
    done = asyncio.Event()
    terminals = Terminals(n, _SUCCESS, done.set)
    handles = await _start_parked(ids, terminals)
    settle()
    span = Span()
    _notify_all(handles)
    await done.wait()
    span.stop_at_done(terminals)
    terminals.check("asyncio notify")
    return span.sample(terminals, n)


def stop_all(n: int) -> Sample:
    """``n`` parked tasks; time for ``stop_all`` to return (every callback has fired by then)."""
    return asyncio.run(_stop_all(n))


async def _stop_all(n: int) -> Sample:
    task.reset()
    ids = task_ids(n)
    terminals = Terminals(n, _CANCEL, lambda: None)
    await _start_parked(ids, terminals)
    settle()
    span = Span()
    stopped = await task.stop_all()
    span.stop()
    terminals.check("asyncio stop_all")
    if stopped != n:
        raise BenchmarkError(f"asyncio stop_all returned {stopped}, expected {n}")
    return span.sample(terminals, n)


def progress(updates: int) -> Sample:
    """PROGRESS_TASKS tasks each yielding ``updates`` progress reports; time to the last callback."""
    return asyncio.run(_progress(updates))


async def _progress(updates: int) -> Sample:
    task.reset()
    ids = task_ids(PROGRESS_TASKS)
    done = asyncio.Event()
    terminals = Terminals(PROGRESS_TASKS, _SUCCESS, done.set)
    start = task.start
    span = Span()
    for task_id in ids:
        await start("progress", task_id, CHAT_KEY, plugin, updates, on_terminal=terminals)
    await done.wait()
    span.stop_at_done(terminals)
    terminals.check("asyncio progress")
    return span.sample(terminals, PROGRESS_TASKS * updates)
