"""Update streams: every progress and terminal TaskCtl of the tasks one watches, as it happens."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, final

import attrs
import trio

from ._checks import check_str
from ._ctl import TaskCtl, TaskSignal

if TYPE_CHECKING:
    from types import TracebackType

    from ._handle import AsyncTaskHandle
    from ._manager import TaskManager

__all__ = ["TaskEvent", "TaskEvents", "event_filter", "entry_of", "publish", "report"]

Entry = tuple["AsyncTaskHandle", TaskCtl, float]
"""A buffered update: the task, its TaskCtl, when. It becomes a TaskEvent only when read."""

_PROGRESS = TaskSignal.PROGRESS


@final
@attrs.frozen
class TaskEvent:
    """One update of a watched task: its new TaskCtl and when it happened (``trio.current_time()``).

    >>> TaskEvent("render", "R1", "chat-1", TaskCtl.report_progress("Frame 10", 10), at=12.5).ctl.progress
    10
    """

    task_type: str
    task_id: str
    chat_key: str
    ctl: TaskCtl
    at: float


@final
class TaskEvents:
    """The stream of :class:`TaskEvent` values from ``manager.watch(...)``.

    Use it as ``async with manager.watch(...) as events: async for event in
    events: ...``. It yields the current state of every matching running task
    first, then each progress and terminal TaskCtl of the matching tasks, in
    order. It never slows a task down: when more than ``buffer`` progress
    events wait to be read, the oldest are dropped and counted in
    :attr:`dropped`; terminal events are never dropped. A watch of one task
    ends after that task's terminal event; any watch ends once the manager
    has closed and every event has been read. Leaving the ``async with``
    block unsubscribes::

        async with manager.watch("render", "R1") as events:
            async for event in events:
                print(f"{event.ctl.progress}% {event.ctl.message}")
        print(f"{events.dropped} updates were skipped")

    Attributes:
        dropped: how many progress events this watcher has dropped so far.
    """

    __slots__ = ("_buffer", "_closed", "_events", "_lot", "_manager", "_progress", "dropped", "matches", "task_key")

    def __init__(
        self,
        manager: TaskManager,
        matches: Callable[[AsyncTaskHandle], bool],
        task_key: tuple[str, str] | None,
        buffer: float,
    ) -> None:
        self.matches = matches
        self.task_key = task_key  # set when it watches one task, which ends it
        self.dropped = 0
        self._manager = manager
        self._buffer = buffer
        self._events: deque[Entry] = deque()
        self._progress = 0  # progress events in _events
        self._closed = False
        self._lot = trio.lowlevel.ParkingLot()

    def __repr__(self) -> str:
        what = "all tasks" if self.task_key is None else ":".join(self.task_key)
        return f"<TaskEvents of {what}, {len(self._events)} waiting, {self.dropped} dropped>"

    async def __aenter__(self) -> TaskEvents:
        self._manager._subscribe(self)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._manager._unsubscribe(self)
        self.close()

    def __aiter__(self) -> TaskEvents:
        return self

    async def __anext__(self) -> TaskEvent:
        if self._events or self._closed:
            await trio.lowlevel.checkpoint()
        else:
            while not (self._events or self._closed):
                await self._lot.park()
        if not self._events:
            raise StopAsyncIteration
        handle, ctl, at = self._events.popleft()
        if ctl.signal is _PROGRESS:
            self._progress -= 1
        return TaskEvent(handle.task_type, handle.task_id, handle.chat_key, ctl, at)

    def push(self, entry: Entry) -> None:
        """Add an update (internal; synchronous, never blocks)."""
        events = self._events
        events.append(entry)
        if entry[1].signal is _PROGRESS:
            self._progress += 1
            if self._progress > self._buffer:
                self._drop_oldest_progress()
        elif self.task_key is not None:
            self._closed = True
        if self._lot:
            self._lot.unpark_all()

    def _drop_oldest_progress(self) -> None:
        events = self._events
        if events[0][1].signal is _PROGRESS:
            events.popleft()
        else:  # terminals of other tasks wait in front: skip them
            for index, (_, ctl, _) in enumerate(events):
                if ctl.signal is _PROGRESS:
                    del events[index]
                    break
        self._progress -= 1
        self.dropped += 1

    def close(self) -> None:
        """No more events will come (internal): iteration ends once the buffer is read."""
        self._closed = True
        if self._lot:
            self._lot.unpark_all()


def event_filter(
    task_type: str | None, task_id: str | None, chat_key: str | None
) -> tuple[Callable[[AsyncTaskHandle], bool], tuple[str, str] | None]:
    """Check the arguments of ``watch``: the test a task must pass, and the one task's key if any."""
    if task_type is not None:
        check_str("task_type", task_type)
    if task_id is not None:
        check_str("task_id", task_id)
        if task_type is None:
            raise TypeError(
                f"watch(task_id={task_id!r}) needs the task_type too: watch(task_type, task_id) watches one task"
            )
    if chat_key is not None:
        check_str("chat_key", chat_key)

    def matches(handle: AsyncTaskHandle) -> bool:
        return (
            (task_type is None or handle.task_type == task_type)
            and (task_id is None or handle.task_id == task_id)
            and (chat_key is None or handle.chat_key == chat_key)
        )

    key = None if task_type is None or task_id is None else (task_type, task_id)
    return matches, key


def entry_of(handle: AsyncTaskHandle, ctl: TaskCtl) -> Entry:
    """The update of ``handle`` reporting ``ctl`` now (internal)."""
    return (handle, ctl, handle._manager._now())


def report(handle: AsyncTaskHandle, ctl: TaskCtl) -> None:
    """Make ``ctl`` the task's state and tell its watchers (internal)."""
    handle._state = ctl
    if handle._watchers:
        publish(handle, ctl)


def publish(handle: AsyncTaskHandle, ctl: TaskCtl) -> None:
    """Hand ``ctl`` to every watcher of ``handle`` (internal; synchronous, never blocks)."""
    entry = (handle, ctl, handle._manager._now())
    for events in handle._watchers or ():
        events.push(entry)
