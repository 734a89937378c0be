"""The runner: the one place that drives a task body to its terminal TaskCtl.

Every accepted start spawns exactly one :func:`run_task`, and every way out of
it passes through one ``finally`` that hands the terminal TaskCtl to the
manager. Between two steps of a body the runner only does synchronous
bookkeeping (design invariant 2): a body may yield from inside its own cancel
scope or nursery, and an ``await`` here would run inside it.
"""

from __future__ import annotations

import logging
import sys
from types import AsyncGeneratorType, CoroutineType
from typing import TYPE_CHECKING, Any

import trio

from ._ctl import TaskCtl, TaskSignal
from ._errors import WaitCancelled
from ._facade import bind_manager

if TYPE_CHECKING:
    from ._handle import AsyncTaskHandle

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

__all__ = ["run_task"]

logger = logging.getLogger("trio_tasks")

_PROGRESS = TaskSignal.PROGRESS
_DONE = TaskCtl.success()
CANCELLED_FROM_OUTSIDE = TaskCtl.cancel("Cancelled from outside the task manager")
_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
_reschedule = trio.lowlevel.reschedule


async def run_task(handle: AsyncTaskHandle, starter: trio.lowlevel.Task) -> None:
    """Drive ``handle``'s body to its end and report exactly one terminal TaskCtl.

    Exceptions from the body end the task FAIL (or CANCEL for
    :class:`WaitCancelled`) and go no further. ``trio.Cancelled`` and other
    BaseExceptions (KeyboardInterrupt) propagate after the terminal is
    reported, so that Trio's cancel scopes and the user see them.
    """
    _reschedule(starter)  # `start` returns once this step yields
    manager = handle._manager
    bind_manager(manager)
    body = handle._body
    is_generator = body.__class__ is AsyncGeneratorType
    terminal: TaskCtl | None = None
    try:
        with handle._scope:
            try:
                await _checkpoint_if_cancelled()  # cancelled before it began: the body never runs
                if is_generator:
                    async for item in body:
                        if item.__class__ is TaskCtl:
                            if item.signal is _PROGRESS:
                                handle._state = item
                                continue
                            terminal = item
                        else:
                            terminal = _not_a_ctl(handle, item)
                        break
                    else:
                        terminal = _DONE
                else:
                    terminal = _returned(await body)
            finally:
                if is_generator:
                    await body.aclose()  # runs the body's finally blocks; no-op once it has finished
                elif body.__class__ is CoroutineType:
                    body.close()  # only matters if it never started
    except Exception as exc:
        if terminal is None:
            terminal = _failed(handle, exc)
        else:
            _log_cleanup_error(handle, exc)
    except BaseException as exc:
        failure, rest = exc.split(Exception) if isinstance(exc, BaseExceptionGroup) else (None, exc)
        if terminal is None:
            terminal = _failed(handle, failure) if failure is not None else _interrupted(handle, exc)
        elif failure is not None:
            _log_cleanup_error(handle, failure)
        if rest is exc:
            raise
        if rest is not None:
            raise rest from None
    finally:
        handle._body = None
        manager._task_ended(handle, terminal if terminal is not None else cancelled_terminal(handle))


def cancelled_terminal(handle: AsyncTaskHandle) -> TaskCtl:
    """The CANCEL for a task whose scope, or a scope around it, was cancelled."""
    return handle._cancel_ctl or handle._generation.cancel_ctl or CANCELLED_FROM_OUTSIDE


def _returned(value: Any) -> TaskCtl:
    """The terminal of a coroutine body that returned ``value``."""
    if value is None:
        return _DONE
    if value.__class__ is TaskCtl and value.is_terminal:
        return value
    return TaskCtl.success(data=value)


def _not_a_ctl(handle: AsyncTaskHandle, item: object) -> TaskCtl:
    message = (
        f"task {handle.task_type}:{handle.task_id} yielded {item!r} ({type(item).__name__}), "
        f"which is not a TaskCtl; yield TaskCtl.report_progress(...), TaskCtl.success(...), "
        f"TaskCtl.fail(...) or TaskCtl.cancel(...)"
    )
    logger.error("%s", message)
    return TaskCtl.fail(message, TypeError(message))


def _failed(handle: AsyncTaskHandle, exc: BaseException) -> TaskCtl:
    """The terminal of a body that raised ``exc`` (an Exception or a group of them)."""
    if isinstance(exc, WaitCancelled):
        return TaskCtl.cancel(f"Cancelled: {exc}")
    if isinstance(exc, BaseExceptionGroup) and exc.split(WaitCancelled)[1] is None:
        return TaskCtl.cancel(f"Cancelled: {exc.exceptions[0]}")
    message = str(exc) or type(exc).__name__
    logger.error("task %s:%s failed: %s", handle.task_type, handle.task_id, message, exc_info=exc)
    return TaskCtl.fail(message, exc)


def _interrupted(handle: AsyncTaskHandle, exc: BaseException) -> TaskCtl:
    """The terminal of a body ended by a BaseException: Cancelled, KeyboardInterrupt..."""
    if isinstance(exc, trio.Cancelled) or (
        isinstance(exc, BaseExceptionGroup) and exc.split(trio.Cancelled)[1] is None
    ):
        return cancelled_terminal(handle)
    message = f"interrupted by {type(exc).__name__}"
    logger.error("task %s:%s %s", handle.task_type, handle.task_id, message, exc_info=exc)
    return TaskCtl.fail(message, exc)


def _log_cleanup_error(handle: AsyncTaskHandle, exc: BaseException) -> None:
    logger.error(
        "task %s:%s raised while closing, after it had ended; its outcome stands",
        handle.task_type,
        handle.task_id,
        exc_info=exc,
    )
