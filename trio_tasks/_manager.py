"""TaskManager: the nursery that owns every task, the live map and the bounded history."""

from __future__ import annotations

import inspect
import logging
import math
import sys
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, final

import trio

from ._callbacks import CallbackNursery
from ._checks import MadeByTheLibrary, check_number, check_str, safe_repr, shown
from ._ctl import TaskCtl
from ._errors import ManagerClosed, TaskAlreadyRunning
from ._facade import bind_manager, unbind_manager
from ._generations import Generation
from ._groups import Countdown, Filter, tick
from ._handle import ENDED_SCOPE, AgentNotice, AsyncTaskHandle
from ._info import TaskInfo, info_of
from ._ki import unprotect_body
from ._limits import Admission, Limiter
from ._plugin import OnLimit, Plugin, TaskSpec, check_limit
from ._portal import TaskPortal
from ._runner import Retrying, leaves, run_task
from ._watch import Subscriptions, TaskEvents, event_filter

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

__all__ = ["TaskManager", "open_task_manager"]

logger = logging.getLogger("trio_tasks")
# The reason of a task's own cancel: a body's Cancelled says who cancelled it.
TASK_CANCEL_REASON = "trio_tasks cancelled this task (cancel() or a filtered stop_all())"

TerminalCallback = Callable[[TaskCtl], object]
NoticeCallback = Callable[[AgentNotice], object]
Key = tuple[str, str]

NOTICE_BUFFER = 1024
_CANCELLED = TaskCtl.cancel("Cancelled by cancel()")
_STOPPED = TaskCtl.cancel("Cancelled by stop_all()")
_CLOSED = TaskCtl.cancel("Cancelled: the task manager closed")
_NO_LIMITS: tuple[Limiter, ...] = ()
_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
_cancel_shielded_checkpoint = trio.lowlevel.cancel_shielded_checkpoint
_current_task = trio.lowlevel.current_task
_wait_task_rescheduled = trio.lowlevel.wait_task_rescheduled


def _refuse_abort(raise_cancel: object) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED  # the task is accepted: start must return its handle


def _key(task_type: str, task_id: str) -> Key:
    if task_type.__class__ is not str or task_id.__class__ is not str:  # the fast path of every lookup
        check_str("task_type", task_type)
        check_str("task_id", task_id)
    return (task_type, task_id)


def _check_ids(task_type: object, task_id: object, chat_key: object) -> None:
    check_str("task_type", task_type)
    check_str("task_id", task_id)
    check_str("chat_key", chat_key)


def _check_grace(grace: object) -> float:
    if grace is None:
        return 0.0
    check_number("grace", grace, unit=" seconds", hint=" (or None to cancel at once)")
    return float(grace)  # type: ignore[arg-type]


@final
class TaskManager(metaclass=MadeByTheLibrary):
    """Runs background tasks inside one Trio nursery; the seed's global ``task`` API.

    Get one from :func:`open_task_manager`. Every task runs in a nursery
    the manager owns, in a cancel scope of its own, ends in exactly one
    terminal :class:`TaskCtl`, and cannot outlive the manager's block::

        async with open_task_manager() as manager:
            handle = await manager.start("render", "R1", "chat-1", plugin, scene="intro")
            print(manager.get_state("render", "R1"))
            await manager.cancel("render", "R1")
    """

    _how = "use `async with trio_tasks.open_task_manager(...) as manager:`"

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        on_agent_notice: NoticeCallback | None = None,
        grace_period: float = 0.0,
        history_limit: int = 10_000,
        max_concurrent: int | None = None,
        on_limit: OnLimit = "queue",
    ) -> None:
        self._root = nursery
        self._generations: list[Generation] = []  # those not yet ended; the last one is the current
        self._generation: Generation | None = None  # where tasks start; opened by _open
        self._switching = 0  # stop_alls opening the next generation; starts wait for them
        self._switch_lock = trio.Lock()
        self._switched = trio.Event()  # set (and replaced) when a switch or the close is done
        self._now = trio.lowlevel.current_clock().current_time
        self._trio_token = trio.lowlevel.current_trio_token()  # the run it belongs to
        self._on_agent_notice = on_agent_notice
        self._grace_period = grace_period
        self._history_limit = history_limit
        self._limit = None if max_concurrent is None else Limiter(max_concurrent, on_limit, "this task manager")
        self._limits: dict[TaskSpec, tuple[Limiter, ...]] = {}
        self._live: dict[Key, AsyncTaskHandle] = {}
        self._history: OrderedDict[Key, AsyncTaskHandle] = OrderedDict()
        self._callbacks = CallbackNursery()
        self._subscriptions = Subscriptions(self._live)
        self._closed = False
        self._notice_send, self._notice_recv = trio.open_memory_channel[AgentNotice](NOTICE_BUFFER)
        self._over = False  # the block has ended and every task with it

    def __repr__(self) -> str:
        status = "closed" if self._closed else "open"
        return f"<TaskManager {status}, {len(self._live)} running>"

    @property
    def closed(self) -> bool:
        """True once the manager's block has ended; no new task can start then.

        ::

            async with open_task_manager() as manager:
                assert not manager.closed
            assert manager.closed
        """
        return self._closed

    # -- starting ---------------------------------------------------------------

    async def start(
        self,
        /,
        task_type: str,
        task_id: str,
        chat_key: str,
        plugin: Plugin,
        *args: Any,
        on_terminal: TerminalCallback | None = None,
        task_timeout: float | None = None,
        **kwargs: Any,
    ) -> AsyncTaskHandle:
        """Start ``plugin``'s ``task_type`` body as ``func(handle, *args, **kwargs)``.

        Returns once the task is registered and its body has begun (it has
        run up to its first checkpoint, blocking or not, or ended), or, under a full
        concurrency limit with ``on_limit="queue"``, once it is queued: from
        then on :meth:`is_running` is True until it ends and the handle
        accepts ``notify``. Like Trio's own functions it is a checkpoint: a
        caller that is cancelled already gets ``trio.Cancelled``, and no task
        starts. If the body declares ``task_id`` or ``chat_key``
        parameters that were not passed, they are filled from this call's
        arguments (by keyword: not a positional-only one). Besides its own
        parameters' names (``task_type``, ``task_id``, ``chat_key``,
        ``plugin``), ``on_terminal`` and ``task_timeout`` are the only
        keywords ``start`` keeps for itself; the rest go to the body::

            handle = await task.start(
                "webapp_dev", "DEV_1", chat_key, plugin,
                requirement="A todo app", on_terminal=lambda ctl: print(ctl.signal),
                task_timeout=3600,
            )

        Args:
            on_terminal: called exactly once with the task's terminal TaskCtl,
                after the task has ended and :meth:`get_state` shows it (with
                ``history_limit=0`` it shows nothing, the task forgotten). If it
                returns an awaitable (an ``async def`` callback), that is run
                in the manager's own nursery; the manager's block waits for it
                when it closes (``grace_period``, then cancel). Errors in
                either kind are logged and swallowed.
            task_timeout: seconds the body may run (from when it begins, over
                every retry); past it the task ends FAIL with a
                :class:`~trio_tasks.TaskTimeout` as ``data``. Its cleanup
                still runs.

        Raises:
            UnknownTaskType: ``plugin`` has not mounted ``task_type``.
            TaskAlreadyRunning: this (task_type, task_id) is still running.
            TooManyTasks: a concurrency limit with ``on_limit="reject"`` is full.
            TypeError: a bad argument: an id that is not a str, a ``plugin``
                that is not a :class:`Plugin`, an ``on_terminal`` that is not
                callable, or arguments the body does not accept.
            ValueError: ``task_timeout`` is a number but not > 0 (a
                ``task_timeout`` that is not a number is a TypeError).
            ManagerClosed: the manager's block has ended.
        """
        await _checkpoint_if_cancelled()
        generation = self._generation
        if generation is None or generation.closing:  # closed, or a stop_all() is opening the next generation
            generation = await self._generation_to_start_in(task_type, task_id)
        if task_type.__class__ is not str or task_id.__class__ is not str or chat_key.__class__ is not str:
            _check_ids(task_type, task_id, chat_key)
        if plugin.__class__ is not Plugin:
            raise TypeError(f"plugin must be a trio_tasks.Plugin, got {safe_repr(plugin)}")
        spec = plugin._specs.get(task_type) or plugin._spec(task_type)
        key = (task_type, task_id)
        if key in self._live:
            raise TaskAlreadyRunning(
                f"task {task_type}:{task_id} is already running; "
                f"wait for it to end or cancel it before starting it again"
            )
        if on_terminal is not None and not callable(on_terminal):
            raise TypeError(f"on_terminal must be a callable taking the terminal TaskCtl, got {safe_repr(on_terminal)}")
        plain = spec.plain and task_timeout is None and self._limit is None  # no option to apply: the usual start
        limits = _NO_LIMITS if plain else self._apply_options(spec, task_id, chat_key, task_timeout, args, kwargs)
        handle = AsyncTaskHandle(task_type, task_id, chat_key, plugin, self, key, on_terminal, self._now())
        try:
            handle._body = spec.func(handle, *args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"cannot start {task_type}:{task_id}: {exc}") from exc
        subscriptions = self._subscriptions
        if subscriptions.broad:
            subscriptions.attach(handle)
        elif subscriptions.keyed:  # attach(), when only watches of one task alone are open (the usual case)
            handle._watchers = subscriptions.keyed.pop(key, None)
        handle._generation = generation
        name = f"trio_tasks:{task_type}:{task_id}"
        if plain:
            generation.nursery.start_soon(run_task, handle, _current_task(), name=name)
        else:
            if spec.unprotect_each:
                unprotect_body(handle._body)
            retrying = None if spec.retry is None else Retrying(spec.retry, spec.func, args, kwargs)
            attempt = None if retrying is None else 1
            admission = Admission(handle, limits, attempt) if limits else None  # takes free slots now, or queues
            generation.nursery.start_soon(
                run_task, handle, _current_task(), admission, task_timeout, retrying, name=name
            )
        self._live[key] = handle
        # Park until the runner has begun (it reschedules us first thing): when
        # start returns, the body has run up to its first checkpoint.
        await _wait_task_rescheduled(_refuse_abort)
        return handle

    def _apply_options(
        self,
        spec: TaskSpec,
        task_id: str,
        chat_key: str,
        task_timeout: float | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[Limiter, ...]:
        """The options part of ``start``: check ``task_timeout`` and the limits (raising as ``start``
        documents), fill the body's ``task_id``/``chat_key`` parameters into ``kwargs``, and return
        the limits the task counts against."""
        if task_timeout is not None:
            check_number("task_timeout", task_timeout, low_ok=False, inf_ok=True, unit=" seconds")
        limits = _NO_LIMITS if spec.max_concurrent is None and self._limit is None else self._limits_for(spec)
        for limiter in limits:
            limiter.check(spec.task_type, task_id)
        for name, covered in spec.fills:
            if name not in kwargs and (covered is None or len(args) < covered):
                kwargs[name] = task_id if name == "task_id" else chat_key
        return limits

    # -- looking ---------------------------------------------------------------

    def is_running(self, task_type: str, task_id: str) -> bool:
        """True from ``start`` until the task's terminal TaskCtl is final (queued tasks too).

        ::

            if not task.is_running("render", "R1"):
                await task.start("render", "R1", "chat-1", plugin, scene="intro")
        """
        return _key(task_type, task_id) in self._live

    def get_handle(self, task_type: str, task_id: str) -> AsyncTaskHandle | None:
        """The running task's handle, or None if it is not running.

        ::

            handle = task.get_handle("approval", "A1")
            if handle is not None:
                handle.notify("approval", True)
        """
        if task_type.__class__ is str and task_id.__class__ is str:
            return self._live.get((task_type, task_id))
        return self._live.get(_key(task_type, task_id))

    def get_state(self, task_type: str, task_id: str) -> TaskCtl | None:
        """The latest TaskCtl of the task: its last progress while it runs, its
        terminal once it has ended (kept for the ``history_limit`` most recently
        ended tasks). A queued task's state is a progress report saying so.
        None if it has reported nothing or is unknown::

            state = task.get_state("render", "R1")
            if state is not None and state.is_terminal:
                print(f"R1 ended: {state.signal.value} {state.message}")
        """
        key = _key(task_type, task_id)
        handle = self._live.get(key) or self._history.get(key)
        return None if handle is None else handle._state

    def get_running_tasks(
        self, *, plugin: Plugin | None = None, task_type: str | None = None, chat_key: str | None = None
    ) -> list[str]:
        """The running (and queued) tasks as ``"task_type:task_id"`` strings, in start order.

        The filters keep only the tasks of one plugin, task type or chat::

            task.get_running_tasks(chat_key="chat-1")   # ['render:R1', 'approval:A1']
        """
        which = Filter(plugin, task_type, chat_key)
        if which.everything:
            return [f"{task_type}:{task_id}" for task_type, task_id in self._live]
        return [f"{handle.task_type}:{handle.task_id}" for handle in which.select(self._live.values())]

    def list_tasks(
        self, *, plugin: Plugin | None = None, task_type: str | None = None, chat_key: str | None = None
    ) -> list[TaskInfo]:
        """What the manager knows of each task: the running (and queued) ones in start order, then
        the ended ones kept in the history, oldest first (one entry per task: a task that runs again
        is listed as running, like :meth:`get_state` shows it). The filters work as in
        :meth:`get_running_tasks`, on each run of a task: so a chat's listing keeps a task's ended
        run in that chat while the task runs again in another chat (or for another plugin)::

            for info in manager.list_tasks(chat_key="chat-1"):
                print(info.task_id, info.status, info.state)

        Like :meth:`get_state`, it works after ``trio.run`` has returned too.
        """
        which = Filter(plugin, task_type, chat_key)
        now = trio.current_time() if self._live else math.nan  # (no task runs after trio.run: none needs it)
        live = which.select(self._live.values())
        listed = {handle._key for handle in live}
        ended = which.select(handle for key, handle in self._history.items() if key not in listed)
        return [info_of(handle, now) for handle in (*live, *ended)]

    # -- cancelling ---------------------------------------------------------------

    async def cancel(self, task_type: str, task_id: str, *, grace: float | None = None) -> bool:
        """Cancel a running task; False if it is not running.

        With ``grace`` seconds, the task is first asked to stop
        (``handle.is_cancelled`` turns True and ``handle.cancel_requested()``
        returns), so it can finish its step and yield its own CANCEL; its
        scope is cancelled when the grace period ends. A queued task is
        cancelled at once. Returns True only after the task has ended
        (CANCEL, unless it ended otherwise first) and its ``on_terminal``
        callback has run (or, if async, started)::

            if await task.cancel("render", "R1", grace=10):
                assert task.get_state("render", "R1").is_terminal

        A body that wants to stop yields ``TaskCtl.cancel(...)``: cancelling
        its own task from inside, it would wait out the grace period in that
        call, then be cancelled.
        """
        key = _key(task_type, task_id)
        seconds = _check_grace(grace)
        await _checkpoint_if_cancelled()
        handle = self._live.get(key)
        if handle is None:
            await _cancel_shielded_checkpoint()
            return False
        await self._stop([handle], _CANCELLED, seconds)
        return True

    async def stop_all(
        self,
        *,
        plugin: Plugin | None = None,
        task_type: str | None = None,
        chat_key: str | None = None,
        grace: float | None = None,
    ) -> int:
        """Cancel every running task (or those matching the filters), wait until they have ended, return how many.

        Every task ends CANCEL (unless it ended otherwise first), and every
        ``on_terminal`` callback has run (or, if async, started) when it
        returns. ``grace`` works as in :meth:`cancel`. Tasks started while
        it waits are not affected. Without filters one cancel reaches every
        task (they share a nursery, which later starts leave for a new one:
        a start made while it opens that nursery waits for it, one
        scheduling round);
        with filters each matching task's own scope is cancelled. A plugin's
        cleanup hook stops only its own tasks with::

            @plugin.on_disabled()
            async def cleanup():
                await task.stop_all(plugin=plugin, grace=5)
        """
        which = Filter(plugin, task_type, chat_key)
        seconds = _check_grace(grace)
        await _checkpoint_if_cancelled()
        if not self._live:
            await _cancel_shielded_checkpoint()
            return 0
        if which.everything:
            return await self._stop_everything(_STOPPED, seconds)
        handles = which.select(self._live.values())
        await self._stop(handles, _STOPPED, seconds)
        return len(handles)

    async def _stop(self, handles: list[AsyncTaskHandle], ctl: TaskCtl, grace: float) -> None:
        """Ask ``handles`` to stop, allow ``grace`` seconds, cancel the rest, wait until all have ended.

        If the caller is cancelled during the grace period, the tasks are
        cancelled at once (the grace is cut short, the cancel still happens).
        """
        ended = Countdown(handles)
        try:
            if grace and handles:
                await self._allow_grace(handles, ended, ctl, grace)
        finally:
            for handle in handles:
                self._cancel_now(handle, ctl)
        await ended.event.wait()

    async def _stop_everything(self, ctl: TaskCtl, grace: float) -> int:
        """:meth:`_stop` for every running task, with one cancel per generation instead of one per task.

        Later starts go to a new generation (none once the manager is
        closing); the older ones, holding every task running now, are
        cancelled. Returns how many tasks it stopped.
        """
        count = len(self._live)  # running now: each is in a generation older than the one we open
        generations = self._generations
        if self._closed:
            older = list(generations)
        else:
            current = await self._switch_generation()
            # Only those before ours: a stop_all beside this one may have opened a newer one since.
            older = generations[: generations.index(current)] if current in generations else list(generations)
        try:
            if grace and count:
                handles = list(self._live.values())
                await self._allow_grace(handles, Countdown(handles), ctl, grace)
        finally:
            for generation in older:
                generation.stop(ctl)
        for generation in older:
            await generation.ended.wait()
        return count

    async def _allow_grace(self, handles: list[AsyncTaskHandle], ended: Countdown, ctl: TaskCtl, grace: float) -> None:
        """Ask ``handles`` to stop and give them up to ``grace`` seconds to end on their own (``ended`` counts them)."""
        for handle in handles:
            self._ask(handle, ctl)
        with trio.move_on_after(grace):
            await ended.event.wait()

    def _ask(self, handle: AsyncTaskHandle, ctl: TaskCtl) -> None:
        """Ask a task to stop; one with no body running (queued, or between retries) is cancelled at once."""
        handle._ask_cancel()
        if handle._queued or handle._body is None:
            self._cancel_now(handle, ctl)

    def _cancel_now(self, handle: AsyncTaskHandle, ctl: TaskCtl) -> None:
        """Cancel a task's scope; it ends with ``ctl`` unless it has ended already, or a cancel
        came first (its own, its generation's: a stop, or Trio's after another task's KeyboardInterrupt,
        or one from outside the manager)."""
        if handle._ended_at is None:
            generation = handle._generation
            first = not handle._scope.cancel_called and (
                generation is None
                or (not generation.nursery.cancel_scope.cancel_called and generation.outside_at == math.inf)
            )
            if first and handle._cancel_ctl is None:  # (cancel_called: its task_timeout came first)
                handle._cancel_ctl = ctl
            if not handle._cancel_asked:
                handle._ask_cancel()
            handle._scope.cancel(reason=TASK_CANCEL_REASON)

    # -- watching ---------------------------------------------------------------

    def watch(
        self,
        task_type: str | None = None,
        task_id: str | None = None,
        *,
        chat_key: str | None = None,
        buffer: int | None = 256,
    ) -> TaskEvents:
        """Stream every progress and terminal TaskCtl of the matching tasks, as :class:`TaskEvent` values.

        ``watch(task_type, task_id)`` follows one task (started already or
        later) and ends after its terminal event (with a ``chat_key`` as
        well: the first run of it in that chat); ``watch(task_type)``,
        ``watch(chat_key=...)`` and ``watch()`` follow every matching task
        until the manager closes. Events flow from entering the ``async
        with`` block, starting with the current state of each matching
        running task. A slow reader never slows a task: past ``buffer``
        unread progress events the oldest are dropped and counted in
        ``events.dropped`` (``buffer=None``: keep all); terminal events are
        never dropped::

            async with manager.watch(chat_key="chat-1") as events:
                async for event in events:
                    await send_to_browser(event.task_id, event.ctl.message, event.ctl.progress)

        Raises:
            TypeError: a filter is not a str, ``task_id`` is given without
                ``task_type``, or ``buffer`` is neither None nor an int.
            ValueError: ``buffer`` is an int < 1.
        """
        if (  # the usual watch, of one task: checked the short way
            chat_key is None and task_id.__class__ is str and task_type.__class__ is str
            and buffer.__class__ is int and buffer >= 1
        ):
            return TaskEvents(self._subscriptions, None, (task_type, task_id), buffer)
        matches, key = event_filter(task_type, task_id, chat_key)
        if buffer is not None and (isinstance(buffer, bool) or not isinstance(buffer, int)):
            raise TypeError(f"buffer must be None or an int >= 1, got {safe_repr(buffer)}")
        if buffer is not None and buffer < 1:
            raise ValueError(f"buffer must be >= 1 (or None to keep every event), got {shown(buffer)}")
        return TaskEvents(self._subscriptions, matches, key, math.inf if buffer is None else buffer)

    # -- other threads ---------------------------------------------------------------

    def portal(self) -> TaskPortal:
        """A :class:`TaskPortal` through which other threads drive this manager.

        Call it in Trio and hand the portal to the thread::

            portal = manager.portal()
            await trio.to_thread.run_sync(gui_main_loop, portal)
        """
        return TaskPortal._create(self, self._trio_token)

    # -- agent notices ---------------------------------------------------------------

    def agent_notices(self) -> trio.MemoryReceiveChannel[AgentNotice]:
        """The queue of :class:`AgentNotice` values sent by ``handle.notify_agent``.

        Use it when the manager has no ``on_agent_notice`` callback. It ends
        once the manager has closed and every notice has been read::

            async for notice in manager.agent_notices():
                print(f"[{notice.task_id}] {notice.message}")

        Each call returns a new receiver on the same queue (each notice goes
        to one of them). The queue holds up to 1024 unread notices; past that,
        ``notify_agent`` waits until the agent reads one.

        Raises:
            RuntimeError: the manager has an ``on_agent_notice`` callback.
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
        if self._over:
            raise ManagerClosed("cannot notify the agent: the task manager has closed")
        await _checkpoint_if_cancelled()  # a Cancelled means: not delivered
        try:
            result = callback(notice)
            if inspect.isawaitable(result):
                await result
            elif inspect.isasyncgen(result):
                _log_async_generator("on_agent_notice", notice.task_type, notice.task_id)
        except Exception:
            logger.exception("on_agent_notice callback raised on a notice of task %s:%s; ignored",
                             notice.task_type, notice.task_id)  # fmt: skip
        except BaseExceptionGroup as group:  # from a nursery of an async callback
            failures, rest = group.split(Exception)
            if failures is not None:
                logger.exception("on_agent_notice callback raised on a notice of task %s:%s; ignored",
                                 notice.task_type, notice.task_id, exc_info=failures)  # fmt: skip
            if rest is not None and rest.split(trio.Cancelled)[1] is not None:
                raise rest from None  # an interrupt goes on
            # Its Cancelleds are the task's cancel: raised afresh just below, as one Cancelled.
        else:
            await _cancel_shielded_checkpoint()  # delivered: no Cancelled from here on
            return
        await trio.lowlevel.checkpoint()  # a cancel that the callback's error hid still reaches the task

    # -- internals ---------------------------------------------------------------

    def _limits_for(self, spec: TaskSpec) -> tuple[Limiter, ...]:
        """The limits a task of ``spec`` counts against: its type's, then the manager's."""
        limits = self._limits.get(spec)
        if limits is None:
            limits = () if self._limit is None else (self._limit,)
            if spec.max_concurrent is not None:
                limits = (Limiter(spec.max_concurrent, spec.on_limit, f"task type {spec.task_type!r}"), *limits)
            self._limits[spec] = limits
        return limits

    async def _open(self) -> None:
        # Shielded: in a cancelled scope, Trio would leave what start() runs in its temporary nursery,
        # and start() would wait for it to end (it never does). The block then meets the cancel.
        with trio.CancelScope(shield=True):
            await self._root.start(self._callbacks.run)
            await self._new_generation()

    async def _switch_generation(self) -> Generation:
        """Open the generation that later starts go to, for a stop_all without filters.

        Starts wait meanwhile (the current generation is closing), so that
        none lands in a generation this stop_all, or another one waiting to
        switch, is about to stop. One switch at a time: each opens a newer
        generation than the last.
        """
        assert self._generation is not None  # not closed
        self._generation.closing = True
        self._switching += 1
        try:
            with trio.CancelScope(shield=True):  # one scheduling round; the stop must happen even if we are cancelled
                async with self._switch_lock:
                    current = await self._new_generation()
        finally:
            self._switching -= 1
        if self._switching and current is self._generation:
            current.closing = True  # another stop_all waits to switch: starts wait for its generation
        self._wake_starts()
        return current

    async def _generation_to_start_in(self, task_type: str, task_id: str) -> Generation:
        """The generation a start goes to once no stop_all is switching; ManagerClosed once closed."""
        while True:
            generation = self._generation
            if generation is not None and not generation.closing:
                return generation
            if generation is None:
                raise ManagerClosed(f"cannot start {task_type}:{task_id}: the task manager has closed")
            if not self._switching:
                raise ManagerClosed(
                    f"cannot start {task_type}:{task_id}: the task manager is closing, "
                    f"as an exception from one of its tasks (a KeyboardInterrupt) leaves it"
                )
            await self._switched.wait()

    def _wake_starts(self) -> None:
        """Let the starts that wait for a new generation look again."""
        self._switched.set()
        self._switched = trio.Event()

    async def _new_generation(self) -> Generation:
        """Open a generation in the manager's nursery; tasks start in it from now on (unless a newer one
        opened meanwhile, for a stop_all beside this one, or the manager has begun to close)."""
        generation = Generation()
        await self._root.start(generation.run, self._generations)
        if self._closed:
            generation.stop(_CLOSED)
        elif generation is self._generations[-1]:
            self._generation = generation
        return generation

    def _task_ended(self, handle: AsyncTaskHandle, terminal: TaskCtl) -> None:
        """Record ``terminal`` and fire the callback; the runner calls this once per task."""
        key = handle._key
        del self._live[key]
        handle._state = terminal
        handle._ended_at = ended_at = self._now()
        if handle._waits is not None:  # waits from outside the body: they end too
            handle._end_waits()
        handle._pending = None  # an ended task keeps no wait points nor kept values
        generation = handle._generation
        if generation is not None and generation.stop_ctl is not None:
            handle._cancel_asked = True  # it was stopped while it ran: is_cancelled stays True
        handle._generation = None  # nor the nursery it ran in (is_cancelled no longer needs it)
        handle._scope = ENDED_SCOPE  # nor its cancel scope
        if handle._cancel_event is not None:  # someone waits in cancel_requested(): it returns now
            _stop_waiting_for_a_cancel(handle, generation)
        limit = self._history_limit
        if limit:
            history = self._history
            if key in history:
                del history[key]  # a task that ran before: its new run becomes the newest
            history[key] = handle
            if len(history) > limit:
                history.popitem(last=False)
        watchers = handle._watchers
        if watchers is not None:  # each gets the terminal event; a watch of this one task ends with it
            watchers._push_terminal((handle, terminal, ended_at, "ended"))
            handle._watchers = None  # the history keeps the handle, not what its watchers buffer
        countdowns = handle._countdowns  # the cancels and stop_alls waiting for this end
        if countdowns is not None:
            handle._countdowns = None
        callback = handle._on_terminal
        if callback is not None:
            handle._on_terminal = None  # called once; the history need not keep what it holds
            try:
                result = callback(terminal)
            except Exception:
                logger.exception("on_terminal callback of task %s:%s raised; ignored", handle.task_type, handle.task_id)
            except BaseException:  # KeyboardInterrupt: the task has ended; let it reach the manager's block
                tick(countdowns)
                if generation is not None:
                    generation.release()
                raise
            else:
                if result is not None and inspect.isawaitable(result):
                    self._callbacks.start(handle, result, countdowns)  # they resume once it has begun
                    return
                if result is not None and inspect.isasyncgen(result):
                    _log_async_generator("on_terminal", handle.task_type, handle.task_id)
        if countdowns is not None:
            tick(countdowns)

    async def _close(self) -> None:
        """End of the manager's block: refuse new starts, ask running tasks to stop,
        allow the grace period, cancel the rest, then the same for async callbacks."""
        self._closed = True
        self._generation = None  # start refuses from now on
        self._wake_starts()  # (those waiting for a stop_all's new generation refuse too)
        grace = self._grace_period
        try:
            await self._stop_everything(_CLOSED, grace)
        finally:
            try:
                with trio.CancelScope(shield=True):  # cancelled tasks end promptly; their callbacks need the nursery
                    while self._generations:  # (each leaves the list once its nursery has closed)
                        generation = self._generations[0]
                        generation.stop(_CLOSED)
                        await generation.ended.wait()
            finally:
                self._callbacks.close(grace)
                self._subscriptions.close()


def _log_async_generator(what: str, task_type: str, task_id: str) -> None:
    logger.error(
        "%s callback returned an async generator on task %s:%s, so none of its code ran (an `async def` with "
        "`yield`?); make it an `async def` function without yield", what, task_type, task_id
    )  # fmt: skip


def _stop_waiting_for_a_cancel(handle: AsyncTaskHandle, generation: Generation | None) -> None:
    event = handle._cancel_event
    assert event is not None
    event.set()
    if generation is not None:
        generation.asked.discard(event)


def _check_options(
    on_agent_notice: object, grace_period: object, history_limit: object, max_concurrent: object, on_limit: object
) -> None:
    if on_agent_notice is not None and not callable(on_agent_notice):
        raise TypeError(f"on_agent_notice must be a callable taking an AgentNotice, got {safe_repr(on_agent_notice)}")
    check_number("grace_period", grace_period, unit=" seconds")
    if isinstance(history_limit, bool) or not isinstance(history_limit, int):
        raise TypeError(f"history_limit must be an int, got {safe_repr(history_limit)}")
    if history_limit < 0:
        raise ValueError(f"history_limit must be >= 0 (0 keeps no history), got {shown(history_limit)}")
    check_limit(max_concurrent, on_limit)


def open_task_manager(
    *,
    on_agent_notice: NoticeCallback | None = None,
    grace_period: float = 0.0,
    history_limit: int = 10_000,
    max_concurrent: int | None = None,
    on_limit: OnLimit = "queue",
) -> AbstractAsyncContextManager[TaskManager]:
    """Open a :class:`TaskManager` for the duration of an ``async with`` block.

    Inside the block (and in the tasks it starts) the module-level
    :data:`trio_tasks.task` object refers to this manager. When the block
    ends, however it ends, no new task may start; running tasks are asked to
    stop (``handle.is_cancelled``, ``handle.cancel_requested()``) and get up
    to ``grace_period`` seconds to finish on their own (unless the block is
    being cancelled), then are cancelled; async ``on_terminal`` callbacks
    still running get the same grace period; the block exits only once every
    task has fired its terminal callback::

        async with open_task_manager(grace_period=5, max_concurrent=8) as manager:
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
        max_concurrent: at most this many tasks run at once in this manager,
            whatever their type (``None``: no limit).
        on_limit: ``"queue"`` (a start beyond the limit is accepted and waits
            for a slot, first come first served) or ``"reject"`` (it raises
            :class:`~trio_tasks.TooManyTasks`).

    An exception raised in the block propagates unchanged (not wrapped in an
    ExceptionGroup); so does a KeyboardInterrupt raised by a task body (the
    first, if several are), which cancels the other tasks and async
    callbacks at once (no grace period).
    A cancel from outside that comes while the manager closes (during its
    grace period, say) cuts the close short: the tasks still running end
    CANCEL at once (cancelled from outside), the async callbacks are
    cancelled, and the ``Cancelled`` goes on from the ``async with``.
    """
    return _Block(_managed(on_agent_notice, grace_period, history_limit, max_concurrent, on_limit))


@final
class _Block:
    """The ``async with`` of :func:`open_task_manager`: a class of the library's, so that its enter and exit,
    and contextlib's code they call, are protected from a Ctrl-C landing in them (see ``_ki``)."""

    __slots__ = ("_entered", "_managed")

    def __init__(self, managed: AbstractAsyncContextManager[TaskManager]) -> None:
        self._managed = managed
        self._entered = False

    async def __aenter__(self) -> TaskManager:
        if self._entered:
            raise RuntimeError(
                "this open_task_manager() block was entered already; "
                "call open_task_manager() again for another task manager"
            )
        self._entered = True
        return await self._managed.__aenter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return await self._managed.__aexit__(exc_type, exc, tb)


@asynccontextmanager
async def _managed(
    on_agent_notice: NoticeCallback | None,
    grace_period: float,
    history_limit: int,
    max_concurrent: int | None,
    on_limit: OnLimit,
) -> AsyncIterator[TaskManager]:
    """What :func:`open_task_manager`'s block does before and after its body."""
    _check_options(on_agent_notice, grace_period, history_limit, max_concurrent, on_limit)
    raised: BaseException | None = None
    manager: TaskManager | None = None
    try:
        async with trio.open_nursery() as nursery:
            manager = TaskManager._create(
                nursery,
                on_agent_notice=on_agent_notice,
                grace_period=grace_period,
                history_limit=history_limit,
                max_concurrent=max_concurrent,
                on_limit=on_limit,
            )
            try:
                await manager._open()
                token = bind_manager(manager)
                try:
                    yield manager
                except GeneratorExit:  # pragma: no cover - the block was abandoned, not exited
                    raise
                except BaseException as exc:  # re-raised below, once every task has ended
                    raised = exc
                finally:
                    unbind_manager(token)
            finally:
                await manager._close()
    except BaseExceptionGroup as group:
        found = list(leaves(group))
        rest = [leaf for leaf in found if not isinstance(leaf, trio.Cancelled)]
        if raised is not None and not rest:
            pass  # the close met a cancel from outside: the block's own exception goes on, below
        elif len(found) == 1 or len(rest) == 1:  # (an interrupt that a cancel from outside met: the interrupt)
            leaf = found[0] if len(found) == 1 else rest[0]
            raise leaf from leaf.__cause__
        elif all(isinstance(leaf, KeyboardInterrupt) for leaf in rest):  # several interrupts (from several
            raise rest[0] from rest[0].__cause__  # tasks, or a second Ctrl-C): the first, for `except` to catch
        else:
            raise
    finally:
        if manager is not None:
            manager._over = True
            manager._notice_send.close()
    if raised is not None:
        raise raised
    await _checkpoint_if_cancelled()  # a cancel from outside that came during the close goes on from here
