"""TaskManager: the nursery that owns every task, the live map and the bounded history."""

from __future__ import annotations

import inspect
import logging
import math
import sys
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, final

import attrs
import trio

from ._ctl import TaskCtl
from ._errors import ManagerClosed, TaskAlreadyRunning
from ._facade import bind_manager, unbind_manager
from ._handle import AgentNotice, AsyncTaskHandle
from ._plugin import Plugin
from ._runner import run_task

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

__all__ = ["TaskManager", "open_task_manager"]

logger = logging.getLogger("trio_tasks")

TerminalCallback = Callable[[TaskCtl], object]
NoticeCallback = Callable[[AgentNotice], object]
Key = tuple[str, str]

NOTICE_BUFFER = 1024
_CANCELLED = TaskCtl.cancel("Cancelled by cancel()")
_STOPPED = TaskCtl.cancel("Cancelled by stop_all()")
_CLOSED = TaskCtl.cancel("Cancelled: the task manager closed")
_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
_cancel_shielded_checkpoint = trio.lowlevel.cancel_shielded_checkpoint
_current_task = trio.lowlevel.current_task
_wait_task_rescheduled = trio.lowlevel.wait_task_rescheduled


def _refuse_abort(raise_cancel: object) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED  # the task is accepted: start must return its handle


@final
class Countdown:
    """Sets ``event`` once ``remaining`` tasks have ended (internal)."""

    __slots__ = ("event", "remaining")

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining
        self.event = trio.Event()

    def tick(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self.event.set()


@final
@attrs.define(eq=False)
class Generation:
    """A nursery inside the manager's own, holding the tasks started since the
    last ``stop_all`` (internal). Stopping them all cancels this one scope."""

    nursery: trio.Nursery
    cancel_ctl: TaskCtl | None = None
    closed: trio.Event = attrs.field(factory=trio.Event)

    def cancel(self, ctl: TaskCtl) -> None:
        if self.cancel_ctl is None:
            self.cancel_ctl = ctl
        self.nursery.cancel_scope.cancel()


def _check_id(what: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {value!r} ({type(value).__name__})")


def _key(task_type: str, task_id: str) -> Key:
    _check_id("task_type", task_type)
    _check_id("task_id", task_id)
    return (task_type, task_id)


@final
class TaskManager:
    """Runs background tasks inside one Trio nursery; the seed's global ``task`` API.

    Get one from :func:`open_task_manager`. Every task runs as a child of the
    manager's nursery in a cancel scope of its own, ends in exactly one
    terminal :class:`TaskCtl`, and cannot outlive the manager's block::

        async with open_task_manager() as manager:
            handle = await manager.start("render", "R1", "chat-1", plugin, scene="intro")
            print(manager.get_state("render", "R1"))
            await manager.cancel("render", "R1")
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        on_agent_notice: NoticeCallback | None,
        grace_period: float,
        history_limit: int,
    ) -> None:
        self._root = nursery
        self._on_agent_notice = on_agent_notice
        self._grace_period = grace_period
        self._history_limit = history_limit
        self._live: dict[Key, AsyncTaskHandle] = {}
        self._history: OrderedDict[Key, AsyncTaskHandle] = OrderedDict()
        self._generations: list[Generation] = []
        self._gen: Generation
        self._closed = False
        self._notice_send, self._notice_recv = trio.open_memory_channel[AgentNotice](NOTICE_BUFFER)

    def __repr__(self) -> str:
        status = "closed" if self._closed else "open"
        return f"<TaskManager {status}, {len(self._live)} running>"

    @property
    def closed(self) -> bool:
        """True once the manager's block has ended: no new task can start."""
        return self._closed

    # -- starting ---------------------------------------------------------------

    async def start(
        self,
        task_type: str,
        task_id: str,
        chat_key: str,
        plugin: Plugin,
        *args: Any,
        on_terminal: TerminalCallback | None = None,
        **kwargs: Any,
    ) -> AsyncTaskHandle:
        """Start ``plugin``'s ``task_type`` body as ``func(handle, *args, **kwargs)``.

        Returns once the task is registered and its body has begun (it has
        run up to its first blocking checkpoint, or ended): from then on
        :meth:`is_running` is True until it ends and the handle accepts
        ``notify``. If the
        body declares ``task_id`` or ``chat_key`` parameters that were not
        passed, they are filled from this call's arguments. ``on_terminal``
        is called exactly once with the task's terminal TaskCtl, after the
        task has ended; if it raises, the error is logged and swallowed::

            handle = await task.start(
                "webapp_dev", "DEV_1", chat_key, plugin,
                requirement="A todo app", on_terminal=lambda ctl: print(ctl.signal),
            )

        Raises:
            UnknownTaskType: ``plugin`` has not mounted ``task_type``.
            TaskAlreadyRunning: this (task_type, task_id) is still running.
            TypeError: a bad argument: an id that is not a str, a ``plugin``
                that is not a :class:`Plugin`, an ``on_terminal`` that is not
                callable, or arguments the body does not accept.
            ManagerClosed: the manager's block has ended.
        """
        await _checkpoint_if_cancelled()
        if self._closed:
            raise ManagerClosed(f"cannot start {task_type}:{task_id}: the task manager has closed")
        key = _key(task_type, task_id)
        _check_id("chat_key", chat_key)
        if not isinstance(plugin, Plugin):
            raise TypeError(f"plugin must be a trio_tasks.Plugin, got {plugin!r}")
        spec = plugin.spec(task_type)
        if key in self._live:
            raise TaskAlreadyRunning(
                f"task {task_type}:{task_id} is already running; "
                f"wait for it to end or cancel it before starting it again"
            )
        if on_terminal is not None and not callable(on_terminal):
            raise TypeError(f"on_terminal must be a callable taking the terminal TaskCtl, got {on_terminal!r}")
        gen = self._gen
        handle = AsyncTaskHandle(task_type, task_id, chat_key, plugin, self, gen, on_terminal, trio.current_time())
        for name, covered in spec.fills:
            if name not in kwargs and (covered is None or len(args) < covered):
                kwargs[name] = task_id if name == "task_id" else chat_key
        try:
            handle._body = spec.func(handle, *args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"cannot start {task_type}:{task_id}: {exc}") from exc
        gen.nursery.start_soon(run_task, handle, _current_task(), name=f"trio_tasks:{task_type}:{task_id}")
        self._live[key] = handle
        # Park until the runner has begun (it reschedules us first thing): when
        # start returns, the body has run up to its first blocking checkpoint.
        await _wait_task_rescheduled(_refuse_abort)
        return handle

    # -- looking ---------------------------------------------------------------

    def is_running(self, task_type: str, task_id: str) -> bool:
        """True from ``start`` until the task's terminal TaskCtl is final."""
        return _key(task_type, task_id) in self._live

    def get_handle(self, task_type: str, task_id: str) -> AsyncTaskHandle | None:
        """The running task's handle, or None if it is not running."""
        return self._live.get(_key(task_type, task_id))

    def get_state(self, task_type: str, task_id: str) -> TaskCtl | None:
        """The latest TaskCtl of the task: its last progress while it runs, its
        terminal once it has ended (kept for the ``history_limit`` most recently
        ended tasks). None if it has reported nothing or is unknown."""
        key = _key(task_type, task_id)
        handle = self._live.get(key) or self._history.get(key)
        return None if handle is None else handle._state

    def get_running_tasks(self) -> list[str]:
        """The running tasks as ``"task_type:task_id"`` strings, in start order."""
        return [f"{task_type}:{task_id}" for task_type, task_id in self._live]

    # -- cancelling ---------------------------------------------------------------

    async def cancel(self, task_type: str, task_id: str) -> bool:
        """Cancel a running task; False if it is not running.

        Returns True only after the task has ended (CANCEL, unless it ended
        otherwise first) and its ``on_terminal`` callback has run::

            if await task.cancel("render", "R1"):
                assert task.get_state("render", "R1").signal is TaskSignal.CANCEL
        """
        key = _key(task_type, task_id)
        await _checkpoint_if_cancelled()
        handle = self._live.get(key)
        if handle is None:
            await _cancel_shielded_checkpoint()
            return False
        if handle._cancel_ctl is None:
            handle._cancel_ctl = _CANCELLED
        handle._scope.cancel()
        await self._until_ended([handle])
        return True

    async def stop_all(self) -> int:
        """Cancel every running task, wait until all have ended, and return how many.

        All their scopes are cancelled at once (one shared scope), then one
        wait; every ``on_terminal`` callback has run when this returns. Tasks
        started meanwhile are not affected::

            count = await task.stop_all()
        """
        await _checkpoint_if_cancelled()
        if not self._live:
            await _cancel_shielded_checkpoint()
            return 0
        if not self._closed:
            self._gen = await self._root.start(self._run_generation)
        count = len(self._live)  # all of them live in older generations
        stopping = [gen for gen in self._generations if gen is not self._gen]
        for gen in stopping:
            gen.cancel(_STOPPED)
        for gen in stopping:
            await gen.closed.wait()
        return count

    # -- agent notices ---------------------------------------------------------------

    def agent_notices(self) -> trio.MemoryReceiveChannel[AgentNotice]:
        """The queue of :class:`AgentNotice` values sent by ``handle.notify_agent``.

        Use it when the manager has no ``on_agent_notice`` callback. It ends
        once the manager has closed and every notice has been read::

            async for notice in manager.agent_notices():
                print(f"[{notice.task_id}] {notice.message}")

        Each call returns a new receiver on the same queue (each notice goes
        to one of them).
        """
        if self._on_agent_notice is not None:
            raise RuntimeError(
                "this manager delivers notices to its on_agent_notice callback; "
                "open it without on_agent_notice to read them from agent_notices()"
            )
        return self._notice_recv.clone()

    async def _deliver_notice(self, notice: AgentNotice) -> None:
        callback = self._on_agent_notice
        if callback is None:
            try:
                await self._notice_send.send(notice)
            except trio.ClosedResourceError:
                raise ManagerClosed("cannot notify the agent: the task manager has closed") from None
            return
        result = callback(notice)
        if inspect.isawaitable(result):
            await result
        else:
            await trio.lowlevel.checkpoint()

    # -- internals ---------------------------------------------------------------

    async def _run_generation(self, task_status: trio.TaskStatus[Generation]) -> None:
        gen: Generation | None = None
        try:
            async with trio.open_nursery() as nursery:
                gen = Generation(nursery)
                self._generations.append(gen)
                task_status.started(gen)
                await trio.sleep_forever()
        finally:
            if gen is not None:
                self._generations.remove(gen)
                gen.closed.set()

    async def _until_ended(self, handles: list[AsyncTaskHandle]) -> None:
        """Wait until every task in ``handles`` (all running now) has ended."""
        countdown = Countdown(len(handles))
        for handle in handles:
            if handle._countdowns is None:
                handle._countdowns = [countdown]
            else:
                handle._countdowns.append(countdown)
        await countdown.event.wait()

    def _task_ended(self, handle: AsyncTaskHandle, terminal: TaskCtl) -> None:
        """Record ``terminal`` and fire the callback; the runner calls this once per task."""
        key = (handle.task_type, handle.task_id)
        del self._live[key]
        handle._state = terminal
        handle._ended_at = trio.current_time()
        handle._close_waits()
        if self._history_limit:
            history = self._history
            history.pop(key, None)
            history[key] = handle
            if len(history) > self._history_limit:
                history.popitem(last=False)
        callback = handle._on_terminal
        if callback is not None:
            try:
                callback(terminal)
            except Exception:
                logger.exception("on_terminal callback of task %s:%s raised; ignored", handle.task_type, handle.task_id)
        if handle._countdowns is not None:
            for countdown in handle._countdowns:
                countdown.tick()

    async def _close(self) -> None:
        """End of the manager's block: refuse new starts, allow the grace period, cancel the rest."""
        self._closed = True
        try:
            if self._grace_period > 0 and self._live:
                with trio.move_on_after(self._grace_period):
                    await self._until_ended(list(self._live.values()))
        finally:
            for gen in self._generations:
                gen.cancel(_CLOSED)


def _check_options(on_agent_notice: object, grace_period: object, history_limit: object) -> None:
    if on_agent_notice is not None and not callable(on_agent_notice):
        raise TypeError(f"on_agent_notice must be a callable taking an AgentNotice, got {on_agent_notice!r}")
    if isinstance(grace_period, bool) or not isinstance(grace_period, (int, float)):
        raise TypeError(f"grace_period must be a number of seconds, got {grace_period!r}")
    if not 0 <= grace_period < math.inf:
        raise ValueError(f"grace_period must be a finite number of seconds >= 0, got {grace_period!r}")
    if isinstance(history_limit, bool) or not isinstance(history_limit, int):
        raise TypeError(f"history_limit must be an int, got {history_limit!r}")
    if history_limit < 0:
        raise ValueError(f"history_limit must be >= 0 (0 keeps no history), got {history_limit!r}")


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


@asynccontextmanager
async def open_task_manager(
    *,
    on_agent_notice: NoticeCallback | None = None,
    grace_period: float = 0.0,
    history_limit: int = 10_000,
) -> AsyncIterator[TaskManager]:
    """Open a :class:`TaskManager` for the duration of an ``async with`` block.

    Inside the block (and in the tasks it starts) the module-level
    :data:`trio_tasks.task` object refers to this manager. When the block
    ends, however it ends, no new task may start; running tasks get up to
    ``grace_period`` seconds to finish on their own (unless the block is
    being cancelled), then are cancelled, and the block exits only once every
    task has fired its terminal callback::

        async with open_task_manager(grace_period=5) as manager:
            await task.start("webapp_dev", "DEV_1", "chat-1", plugin, requirement="...")
            ...

    Args:
        on_agent_notice: called (sync or async) with each :class:`AgentNotice`
            a task sends; without it notices queue up in
            :meth:`TaskManager.agent_notices`.
        grace_period: seconds running tasks may take to end on their own
            when the block ends.
        history_limit: how many ended tasks keep their terminal state for
            ``get_state``; the oldest are forgotten first.

    An exception raised in the block propagates unchanged (not wrapped in an
    ExceptionGroup); so does a KeyboardInterrupt raised by a task body.
    """
    _check_options(on_agent_notice, grace_period, history_limit)
    raised: BaseException | None = None
    manager: TaskManager | None = None
    try:
        async with trio.open_nursery() as nursery:
            manager = TaskManager(
                nursery, on_agent_notice=on_agent_notice, grace_period=grace_period, history_limit=history_limit
            )
            manager._gen = await nursery.start(manager._run_generation)
            token = bind_manager(manager)
            try:
                yield manager
            except GeneratorExit:  # pragma: no cover - the block was abandoned, not exited
                raise
            except BaseException as exc:  # re-raised below, once every task has ended
                raised = exc
            finally:
                unbind_manager(token)
                await manager._close()
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        if len(leaves) == 1:
            raise leaves[0] from leaves[0].__cause__
        raise
    finally:
        if manager is not None:
            manager._notice_send.close()
    if raised is not None:
        raise raised
