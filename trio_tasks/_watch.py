"""Update streams: every progress and terminal TaskCtl of the tasks one watches, as it happens."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, final

import attrs
import trio

from ._checks import check_str
from ._ctl import TaskCtl, TaskSignal
from ._info import Status

if TYPE_CHECKING:
    from types import TracebackType

    from ._handle import AsyncTaskHandle

__all__ = [
    "EventFilter", "Fanout", "Subscriptions", "TaskEvent", "TaskEvents", "Watchers", "entry_of", "event_filter",
    "report",
]  # fmt: skip

Entry = tuple["AsyncTaskHandle", TaskCtl, float, Status]
"""A buffered update: the task, its TaskCtl, when, its status. It becomes a TaskEvent only when read."""

_PROGRESS = TaskSignal.PROGRESS


@final
@attrs.frozen
class TaskEvent:
    """One update of a watched task: its new TaskCtl, when it happened (``trio.current_time()``)
    and what the task was doing then. (The current state a watch gives first, for a task that
    was running already, is dated when the watch began.)

    >>> event = TaskEvent("render", "R1", "chat-1", TaskCtl.report_progress("Frame 10", 10), at=12.5)
    >>> event.ctl.progress, event.status
    (10, 'running')

    ``status`` is ``"queued"`` while the task waits for a concurrency slot,
    ``"running"`` once its body has begun, and ``"ended"`` with its terminal
    TaskCtl.
    """

    task_type: str
    task_id: str
    chat_key: str
    ctl: TaskCtl
    at: float
    status: Status = "running"


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
    block unsubscribes. A stream is entered once; reading one that was
    never entered (which nothing would feed) raises RuntimeError::

        async with manager.watch("render", "R1") as events:
            async for event in events:
                if event.ctl.is_terminal:
                    print(f"{event.ctl.signal.value}: {event.ctl.message}")
                else:
                    print(f"{event.ctl.progress}% {event.ctl.message}")
        print(f"{events.dropped} updates were skipped")

    Attributes:
        dropped: how many progress events this watcher has dropped so far.
    """

    __slots__ = (
        "_buffer", "_closed", "_entered", "_events", "_lot", "_matches", "_progress", "_ready", "_subscriptions",
        "_task_key", "dropped",
    )  # fmt: skip

    def __init__(
        self,
        subscriptions: Subscriptions,
        matches: EventFilter | None,
        task_key: tuple[str, str] | None,
        buffer: float,
    ) -> None:
        self._matches = matches  # the test a task must pass; None for a watch of one task (by key alone)
        self._task_key = task_key  # set when it watches one task, whose terminal ends it
        self.dropped = 0
        self._subscriptions = subscriptions  # the manager's
        self._buffer = buffer
        self._events: deque[Entry] = deque()
        self._progress = 0  # progress events in _events
        self._ready: deque[Entry] | None = None  # terminal events that come before all of _events (made when needed)
        self._closed = False
        self._entered = False
        self._lot: trio.lowlevel.ParkingLot | None = None  # readers waiting for an event; None when none waits

    def __repr__(self) -> str:
        what = ":".join(self._task_key) if self._matches is None and self._task_key is not None else self._matches
        waiting = len(self._events) + (len(self._ready) if self._ready else 0)
        return f"<TaskEvents of {what}, {waiting} waiting, {self.dropped} dropped>"

    async def __aenter__(self) -> TaskEvents:
        if self._entered:
            raise RuntimeError(f"{self!r} was entered already; call manager.watch(...) again for another stream")
        self._entered = True
        subscriptions = self._subscriptions
        key = self._task_key
        if key is not None and self._matches is None and key not in subscriptions.live and not subscriptions.closed:
            # The usual watch: of one task yet to start. It becomes the task's watchers when it starts.
            keyed = subscriptions.keyed
            watchers = keyed.setdefault(key, self)
            if watchers is not self:  # the task has watchers waiting already
                keyed[key] = joined(watchers, self)
        else:
            subscriptions.subscribe(self)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._subscriptions.unsubscribe(self)
        self._close()

    def __aiter__(self) -> TaskEvents:
        return self

    async def __anext__(self) -> TaskEvent:
        if self._events or self._ready or self._closed:
            await trio.lowlevel.checkpoint()
        # Wait for an event (again, if another reader of this stream took the last one meanwhile).
        while not (self._events or self._ready or self._closed):
            if not self._entered:  # it would wait for ever: nothing feeds it
                raise RuntimeError(
                    f"{self!r} is read before it is entered: use it as "
                    "`async with manager.watch(...) as events: async for event in events: ...`"
                )
            lot = self._lot
            if lot is None:
                lot = self._lot = trio.lowlevel.ParkingLot()
            await lot.park()
        if self._ready:  # terminal events the buffer moved out of the way: they come first
            handle, ctl, at, status = self._ready.popleft()
        elif self._events:
            handle, ctl, at, status = self._events.popleft()
            if ctl.signal is _PROGRESS:
                self._progress -= 1
        else:
            raise StopAsyncIteration
        return TaskEvent(handle.task_type, handle.task_id, handle.chat_key, ctl, at, status)

    def _push(self, entry: Entry) -> None:
        """Add an update (internal; synchronous, never blocks)."""
        if entry[1].signal is _PROGRESS:
            self._push_progress(entry)
        else:
            self._push_terminal(entry)

    def _push_terminal(self, entry: Entry) -> None:
        """Add a terminal update, never dropped; a watch of one task ends with it (internal)."""
        self._events.append(entry)
        if self._task_key is not None:
            self._closed = True
        if self._lot is not None:
            self._wake()

    def _push_progress(self, entry: Entry) -> None:
        """Add a progress update, dropping the oldest past the buffer (internal; the hot path)."""
        events = self._events
        events.append(entry)
        if self._progress < self._buffer:
            self._progress += 1
        elif events[0][1].signal is _PROGRESS:  # full: drop the oldest progress event
            events.popleft()
            self.dropped += 1
        else:
            self._drop_behind_terminals()
        if self._lot is not None:
            self._wake()

    def _wake(self) -> None:
        """Wake every waiting reader (internal); the next reader that has to wait makes a new lot."""
        lot = self._lot
        self._lot = None
        if lot is not None:
            lot.unpark_all()

    def _drop_behind_terminals(self) -> None:
        """Full, with terminal events in front: drop the oldest progress event behind them (internal).

        The terminal events in front move to ``_ready``, read before ``_events``, so that each is passed
        over once, not at every drop: a drop costs O(1), however many unread terminal events wait.
        (The buffer is full, so ``_events`` holds a progress event: the one just added, at least.)
        """
        events = self._events
        ready = self._ready
        if ready is None:
            ready = self._ready = deque()
        while events[0][1].signal is not _PROGRESS:
            ready.append(events.popleft())
        events.popleft()
        self.dropped += 1

    def _close(self) -> None:
        """No more events will come (internal): iteration ends once the buffer is read."""
        self._closed = True
        self._wake()


def event_filter(
    task_type: str | None, task_id: str | None, chat_key: str | None
) -> tuple[EventFilter | None, tuple[str, str] | None]:
    """Check the arguments of ``watch``: the one task's key, or else the test a task must pass."""
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

    key = None if task_type is None or task_id is None else (task_type, task_id)
    if key is not None and chat_key is None:
        return None, key
    return EventFilter(task_type, task_id, chat_key), key  # with a key: a watch of one task, in one chat


@final
@attrs.frozen
class EventFilter:
    """The test a task must pass to be followed by a watch that is not of one task alone (internal)."""

    task_type: str | None
    task_id: str | None
    chat_key: str | None

    def __call__(self, handle: AsyncTaskHandle) -> bool:
        return (
            (self.task_type is None or handle.task_type == self.task_type)
            and (self.task_id is None or handle.task_id == self.task_id)
            and (self.chat_key is None or handle.chat_key == self.chat_key)
        )

    def __str__(self) -> str:
        given = [f"{name}={value!r}" for name, value in attrs.asdict(self).items() if value is not None]
        return ", ".join(given) if given else "all tasks"


@final
class Fanout(list[TaskEvents]):
    """The watchers of a task that has several (internal): each push hands the update to every one.

    A task with one watcher holds that :class:`TaskEvents` bare instead, as
    most do: both take the same pushes, so an update is one call either way.
    """

    __slots__ = ()

    def _push(self, entry: Entry) -> None:
        for events in self:
            events._push(entry)

    def _push_progress(self, entry: Entry) -> None:
        for events in self:
            events._push_progress(entry)

    def _push_terminal(self, entry: Entry) -> None:
        for events in self:
            events._push_terminal(entry)


Watchers = TaskEvents | Fanout
"""A task's watchers: one, bare, or several (internal)."""


def joined(watchers: Watchers | None, events: TaskEvents) -> Watchers:
    """``watchers`` with ``events`` added (internal)."""
    if watchers is None:
        return events
    if isinstance(watchers, Fanout):
        watchers.append(events)
        return watchers
    return Fanout((watchers, events))


def without(watchers: Watchers, events: TaskEvents) -> Watchers | None:
    """``watchers`` with ``events`` taken out, if it was in (internal); None when none is left."""
    if watchers is events:
        return None
    if isinstance(watchers, Fanout) and events in watchers:
        watchers.remove(events)
        return watchers if len(watchers) > 1 else watchers[0]
    return watchers


def members(watchers: Watchers) -> Fanout | tuple[TaskEvents]:
    """Each watcher of ``watchers`` (internal)."""
    return watchers if isinstance(watchers, Fanout) else (watchers,)


def entry_of(handle: AsyncTaskHandle, ctl: TaskCtl) -> Entry:
    """The update of ``handle`` reporting ``ctl`` now (internal)."""
    status: Status = "ended" if ctl.is_terminal else "queued" if handle._queued else "running"
    return (handle, ctl, handle._manager._now(), status)


def report(handle: AsyncTaskHandle, ctl: TaskCtl) -> None:
    """Make ``ctl`` the task's state and hand it to its watchers (internal; synchronous, never blocks)."""
    handle._state = ctl
    watchers = handle._watchers
    if watchers is not None:
        watchers._push(entry_of(handle, ctl))


@final
class Subscriptions:
    """Which watchers follow which tasks (internal; one per task manager).

    A watch of one task that is not running is kept by key until the task
    starts, when it becomes the task's own; the other watches are checked
    against each starting task. Each running task keeps its own watchers
    (``handle._watchers``: None, one :class:`TaskEvents`, or a
    :class:`Fanout`), so an update costs nothing without watchers and one
    push with them.
    """

    __slots__ = ("broad", "closed", "keyed", "live")

    def __init__(self, live: dict[tuple[str, str], AsyncTaskHandle]) -> None:
        self.live = live  # the manager's running tasks
        self.keyed: dict[tuple[str, str], Watchers] = {}
        self.broad: list[TaskEvents] = []
        self.closed = False

    def subscribe(self, events: TaskEvents) -> None:
        """Start feeding ``events``, a watch of a running task or a broad one: the current state of each
        matching running task first. (``TaskEvents.__aenter__`` itself puts a watch of one task yet to start
        in ``keyed``.)"""
        if self.closed:
            events._close()
            return
        live = self.live
        matches = events._matches
        if matches is None:  # a watch of a running task, by key
            assert events._task_key is not None
            handles = [live[events._task_key]]
        else:
            self.broad.append(events)
            handles = [handle for handle in live.values() if matches(handle)]
        for handle in handles:
            handle._watchers = joined(handle._watchers, events)
            if handle._state is not None:
                events._push(entry_of(handle, handle._state))

    def unsubscribe(self, events: TaskEvents) -> None:
        """Stop feeding ``events``."""
        live = self.live
        key = events._task_key
        if key is not None and events._matches is None:
            watchers = self.keyed.get(key)
            if watchers is not None and events in members(watchers):
                rest = without(watchers, events)
                if rest is None:
                    del self.keyed[key]
                else:
                    self.keyed[key] = rest
                return
            handle = live.get(key)
            handles = [] if handle is None else [handle]
        else:
            if events in self.broad:
                self.broad.remove(events)
            handles = list(live.values())
        for handle in handles:
            if handle._watchers is not None:
                handle._watchers = without(handle._watchers, events)

    def attach(self, handle: AsyncTaskHandle) -> None:
        """A task starts: the watches waiting for it become its watchers, with the other watches it matches.

        (``start`` itself does this for a task when no watch but watches of one task alone is open.)"""
        watchers = self.keyed.pop(handle._key, None) if self.keyed else None
        for events in self.broad:
            if not events._closed and events._matches is not None and events._matches(handle):
                watchers = joined(watchers, events)
        handle._watchers = watchers

    def close(self) -> None:
        """Every task has ended: every watch ends once read."""
        self.closed = True
        for events in [*self.broad, *(events for watchers in self.keyed.values() for events in members(watchers))]:
            events._close()
