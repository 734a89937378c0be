"""AsyncTaskHandle: a running task's identity, wait points and messages to the agent."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, final

import attrs
import trio

from ._checks import check_number, check_str, safe_repr
from ._ctl import TaskCtl
from ._errors import WaitCancelled

if TYPE_CHECKING:
    from ._generations import Generation
    from ._groups import Countdown
    from ._manager import TaskManager
    from ._plugin import Plugin
    from ._watch import Watchers

__all__ = ["AgentNotice", "AsyncTaskHandle"]

_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
_cancel_shielded_checkpoint = trio.lowlevel.cancel_shielded_checkpoint
_current_task = trio.lowlevel.current_task
_wait_task_rescheduled = trio.lowlevel.wait_task_rescheduled
_reschedule = trio.lowlevel.reschedule
_ABORT_SUCCEEDED = trio.lowlevel.Abort.SUCCEEDED

ENDED_SCOPE = trio.CancelScope()
"""The cancel scope an ended task's handle holds instead of its own, which it lets go (internal)."""


@final
@attrs.frozen
class AgentNotice:
    """A message from a task to the main agent, sent by :meth:`AsyncTaskHandle.notify_agent`.

    ``trigger`` says whether the agent should react now (start a turn) or
    only record the message.

    >>> AgentNotice("render", "R1", "chat-1", "Scene 2 is ready", trigger=False).message
    'Scene 2 is ready'
    """

    task_type: str
    task_id: str
    chat_key: str
    message: str
    trigger: bool = True


_PENDING, _NOTIFIED, _CANCELLED, _ENDED = 0, 1, 2, 3


@final
class _Waiter:
    """One pending ``wait(key)``: the task parked on it, and how it was resolved.

    The task parks directly (``wait_task_rescheduled``) instead of on a
    ``trio.Event``: a parked task then holds no Event nor ParkingLot.
    """

    __slots__ = ("key", "outcome", "task", "value")

    def __init__(self, key: str) -> None:
        self.key = key
        self.task: trio.lowlevel.Task | None = None  # set while parked
        self.value: Any = None
        self.outcome = _PENDING  # _NOTIFIED, _CANCELLED or _ENDED once resolved (no longer registered)

    async def park(self) -> None:
        """Block until :meth:`resolve`, or until cancelled."""
        self.task = _current_task()
        await _wait_task_rescheduled(self._abort)

    def _abort(self, raise_cancel: object) -> trio.lowlevel.Abort:
        self.task = None  # cancelled (or timed out): no longer waiting; notify and cancel_wait pass it by
        return _ABORT_SUCCEEDED

    def resolve(self, value: Any, outcome: int) -> None:
        self.value = value
        self.outcome = outcome
        task = self.task
        if task is not None:
            self.task = None
            _reschedule(task)


def _check_key(key: object) -> None:
    check_str("wait point key", key)


@final
@attrs.define(eq=False, repr=False)
class AsyncTaskHandle:
    """The running task's side of trio_tasks: its identity and its wait points.

    A task body receives its handle as the first argument. The agent side
    reaches the same object through ``task.get_handle(task_type, task_id)``
    to resume a wait point::

        @plugin.mount_async_task("approval")
        async def approval(handle, prompt: str):
            yield TaskCtl.report_progress("Waiting for approval...", 50)
            approved = await handle.wait("approval", timeout=3600)
            yield TaskCtl.success("Approved") if approved else TaskCtl.fail("Not approved")

        await task.start("approval", "A1", "chat-1", plugin, prompt="Deploy to production?")
        # later, when the user says yes:
        task.get_handle("approval", "A1").notify("approval", True)

    Attributes:
        task_type: the mounted type this task runs.
        task_id: the id it was started with.
        chat_key: the chat it belongs to.
        plugin: the plugin that mounted ``task_type``.
    """

    task_type: str
    task_id: str
    chat_key: str
    plugin: Plugin
    # Bookkeeping shared with the manager and the runner.
    _manager: TaskManager
    _key: tuple[str, str]
    _on_terminal: Any
    _started_at: float
    _body: Any = None  # the running body; None once it has ended (and between two attempts of a retry policy)
    _ended_at: float | None = None
    _state: TaskCtl | None = None
    _queued: bool = False  # waiting for a concurrency slot; the body has not begun
    _cancel_asked: bool = False  # is_cancelled: a cancel was requested (maybe with a grace period)
    _cancel_event: trio.Event | None = None  # made by the first cancel_requested() that has to wait
    _cancel_ctl: TaskCtl | None = None  # the CANCEL to report: set when the manager cancels the scope itself
    _waits_closed: bool = False
    _waits: _Waiter | dict[str, _Waiter] | None = None  # one pending wait is kept bare: most tasks have one
    _pending: dict[str, Any] | None = None
    _countdowns: list[Countdown] | None = None
    _watchers: Watchers | None = None  # its watches: one bare (the usual case) or a Fanout of several
    _generation: Generation | None = None  # the nursery the task runs in
    _scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)

    def __repr__(self) -> str:
        status = "running" if self._ended_at is None else "ended"
        return f"<AsyncTaskHandle {self.task_type}:{self.task_id} chat={self.chat_key!r} {status}>"

    @property
    def is_cancelled(self) -> bool:
        """True from the moment a cancel of this task is requested.

        That is ``task.cancel``, ``task.stop_all``, the manager closing (with
        or without a grace period), or :meth:`cancel_all`. A body can poll it
        between steps to stop cleanly (the seed's cooperative pattern)::

            if handle.is_cancelled:
                yield TaskCtl.cancel("Stopped at a clean point")
                return
        """
        if self._cancel_asked:
            return True
        generation = self._generation  # stop_all() and the manager's close stop a whole generation at once
        return generation is not None and generation.stop_ctl is not None and self._ended_at is None

    async def cancel_requested(self) -> None:
        """Return once a cancel of this task has been requested (at once if it has been), or once
        the task has ended (check :attr:`is_cancelled` to tell, outside the body).

        With a grace period (``task.cancel(..., grace=30)``, ``stop_all(grace=...)``
        or the manager's ``grace_period``) the body keeps running until the
        grace period ends, so it can finish its step and yield its own
        CANCEL. Run it beside the work, for example in a nursery::

            async def stop_when_asked(scope: trio.CancelScope) -> None:
                await handle.cancel_requested()
                scope.cancel()

            with trio.CancelScope() as work:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(stop_when_asked, work)
                    await render_frames()
                    nursery.cancel_scope.cancel()  # done: stop listening
            if work.cancelled_caught:
                yield TaskCtl.cancel("Render stopped on request")
            else:
                yield TaskCtl.success("Rendered")
        """
        if self.is_cancelled or self._ended_at is not None:
            await _checkpoint_if_cancelled()
            await _cancel_shielded_checkpoint()
            return
        if self._cancel_event is None:
            self._cancel_event = trio.Event()
            if self._generation is not None:  # a stop of the whole generation sets it too
                self._generation.asked.add(self._cancel_event)
        await self._cancel_event.wait()

    async def wait(self, key: str, timeout: float | None = None) -> Any:
        """Wait until ``notify(key, data)`` and return ``data``.

        Returns ``None`` if ``timeout`` seconds pass first (so ``if approved:``
        reads naturally). A value notified before the wait began is returned
        at once. Raises :class:`WaitCancelled` if ``cancel_wait(key)`` or
        :meth:`cancel_all` cancels the wait (or has already closed the wait
        points); if that escapes the body, the task ends CANCEL::

            approved = await handle.wait("approval", timeout=3600)

        Raises:
            TypeError: ``key`` is not a str, or ``timeout`` is not a number.
            ValueError: ``timeout`` is negative or NaN.
            RuntimeError: this task has ended (before the wait, or during a
                wait made from outside its body), or another wait on ``key``
                is pending (one that a cancel or its timeout has reached is
                not).
        """
        if key.__class__ is not str:
            _check_key(key)
        if timeout is not None:
            check_number("timeout", timeout, inf_ok=True, unit=" seconds", hint=" (or None to wait forever)")
        if self._ended_at is not None:
            raise RuntimeError(f"task {self.task_type}:{self.task_id} has ended; its handle cannot wait")
        if self._waits_closed:
            await _checkpoint_if_cancelled()
            raise WaitCancelled(key)
        pending = self._pending
        if pending and key in pending:  # notified before the wait: no blocking, but still a checkpoint
            await _checkpoint_if_cancelled()
            value = pending.pop(key)
            await _cancel_shielded_checkpoint()
            return value
        waiter = _Waiter(key)
        if self._waits is None:
            self._waits = waiter  # the usual case: one wait at a time
        else:
            self._add_waiter(waiter)
        try:
            if timeout is None or timeout == math.inf:
                await waiter.park()
            else:
                with trio.move_on_after(timeout):
                    await waiter.park()
        finally:
            if waiter.outcome == _PENDING:  # timed out or cancelled: registered, unless notify or cancel_wait
                self._drop_waiter(waiter)  # found it so (then another wait on key may be registered since)
        if waiter.outcome == _CANCELLED:
            raise WaitCancelled(key)
        if waiter.outcome == _ENDED:
            raise RuntimeError(f"task {self.task_type}:{self.task_id} ended during this wait on {key!r}")
        return waiter.value

    def _add_waiter(self, waiter: _Waiter) -> None:
        waits = self._waits
        if waits is None or (isinstance(waits, _Waiter) and waits.key == waiter.key and waits.task is None):
            self._waits = waiter  # (a wait on the key that a cancel reached no longer waits: it gives way)
            return
        if isinstance(waits, _Waiter):
            waits = self._waits = {waits.key: waits}
        other = waits.get(waiter.key)
        if other is not None and other.task is not None:
            raise RuntimeError(
                f"task {self.task_type}:{self.task_id} is already waiting on {waiter.key!r}; "
                f"use a different key for each concurrent wait"
            )
        waits[waiter.key] = waiter

    def _drop_waiter(self, waiter: _Waiter) -> None:
        waits = self._waits
        if waits is waiter:
            self._waits = None
        elif isinstance(waits, dict) and waits.get(waiter.key) is waiter:
            del waits[waiter.key]

    def _pop_waiter(self, key: str) -> _Waiter | None:
        waits = self._waits
        if waits is None:
            return None
        if isinstance(waits, _Waiter):
            if waits.key != key:
                return None
            self._waits = None
            return waits
        return waits.pop(key, None)

    def notify(self, key: str, data: Any = None) -> bool:
        """Resume the wait on ``key`` with ``data``; True if a wait was resumed.

        If nobody waits on ``key`` yet, ``data`` is kept (the latest value
        wins) and the next ``wait(key)`` returns it at once; this returns
        False. A wait that a cancel or its timeout has already reached, but
        that has not resumed yet, no longer waits: the value is kept for the
        next ``wait(key)`` then too. Once the task has ended nothing is kept
        and this returns False::

            handle.notify("approval", True)
        """
        if key.__class__ is not str:
            _check_key(key)
        if self._ended_at is not None:
            return False
        waiter = self._waits
        if waiter.__class__ is _Waiter and waiter.key == key:
            self._waits = None  # the usual case: the one pending wait
        else:
            waiter = self._pop_waiter(key)
        if waiter is None or waiter.task is None:  # (task None: the wait is being cancelled, or timing out)
            if self._pending is None:
                self._pending = {}
            self._pending[key] = data
            return False
        waiter.resolve(data, _NOTIFIED)
        return True

    def cancel_wait(self, key: str) -> bool:
        """Make the pending ``wait(key)`` raise :class:`WaitCancelled`.

        Returns True if a wait was pending, False otherwise (nothing is kept
        for a later wait)::

            handle.cancel_wait("approval")
        """
        _check_key(key)
        waiter = self._pop_waiter(key)
        if waiter is None or waiter.task is None:  # (task None: the wait is being cancelled, or timing out)
            return False
        waiter.resolve(None, _CANCELLED)
        return True

    def cancel_all(self) -> int:
        """Cancel every pending wait and close the wait points; return how many were pending.

        Afterwards :attr:`is_cancelled` is True and every later ``wait``
        raises :class:`WaitCancelled` at once, so a cancel sent just before
        the body reaches a wait point is not lost::

            handle.cancel_all()   # a WaitCancelled that escapes the body ends the task CANCEL
        """
        self._waits_closed = True
        if self._ended_at is None:  # (an ended task keeps its is_cancelled)
            self._ask_cancel()
        return self._resolve_every_wait(_CANCELLED)

    def _resolve_every_wait(self, outcome: int) -> int:
        """Resume every pending wait with ``outcome`` and forget them; return how many there were."""
        waits = self._waits
        self._waits = None
        waiters = [] if waits is None else [waits] if isinstance(waits, _Waiter) else list(waits.values())
        waiting = [waiter for waiter in waiters if waiter.task is not None]  # (not those being cancelled)
        for waiter in waiting:
            waiter.resolve(None, outcome)
        return len(waiting)

    def _end_waits(self) -> None:
        """The task has ended (internal): a wait still pending, from outside the body, raises RuntimeError."""
        self._resolve_every_wait(_ENDED)

    async def notify_agent(self, message: str, trigger: bool = True) -> None:
        """Send an :class:`AgentNotice` to the main agent.

        It goes to the manager's ``on_agent_notice`` callback (awaited, if
        async: a slow one slows the task; one that raises is logged and
        ignored, and a cancel of the task that it met goes on), or, without one, into the queue read by
        ``manager.agent_notices()``; when that queue is full (1024 unread
        notices) this waits for room, it never drops a notice::

            await handle.notify_agent("The preview is ready: https://...", trigger=True)

        Like any Trio operation it is a checkpoint: in a cancelled scope it
        raises ``trio.Cancelled`` and sends nothing. To send a last notice
        from the cleanup of a cancelled task, shield it with
        ``with trio.CancelScope(shield=True):``.

        Raises:
            TypeError: ``message`` is not a str or ``trigger`` not a bool.
            ManagerClosed: the manager's block has ended (and every task with it).
        """
        if not isinstance(message, str):
            raise TypeError(f"message must be a str, got {safe_repr(message)} ({type(message).__name__})")
        if not isinstance(trigger, bool):
            raise TypeError(f"trigger must be a bool, got {safe_repr(trigger)}")
        notice = AgentNotice(self.task_type, self.task_id, self.chat_key, message, trigger)
        await self._manager._deliver_notice(notice)

    def _ask_cancel(self) -> None:
        """Mark a cancel as requested: is_cancelled turns True, cancel_requested() returns."""
        self._cancel_asked = True
        if self._cancel_event is not None:
            self._cancel_event.set()

