"""The runner: the one place that drives a task body to its terminal TaskCtl.

Every accepted start spawns exactly one :func:`run_task`, and every way out of
it passes through one ``finally`` that hands the terminal TaskCtl to the
manager. Between two steps of a body the runner only does synchronous
bookkeeping (design invariant 2): a body may yield from inside its own cancel
scope or nursery, and an ``await`` here would run inside it.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Iterator
from types import AsyncGeneratorType, CoroutineType
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ._checks import error_text, safe_repr
from ._ctl import TaskCtl, TaskSignal
from ._errors import TaskTimeout, WaitCancelled
from ._facade import bind_manager, bound_manager
from ._watch import report

if TYPE_CHECKING:
    from ._handle import AsyncTaskHandle
    from ._limits import Admission
    from ._retry import RetryPolicy

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

__all__ = ["Retrying", "leaves", "run_task"]

logger = logging.getLogger("trio_tasks")

_PROGRESS = TaskSignal.PROGRESS
_DONE = TaskCtl.success()
_STARTED = TaskCtl.report_progress("Started: a concurrency slot came free", 0)
_STARTED_FIRST_ATTEMPT = attrs.evolve(_STARTED, attempt=1)
CANCELLED_FROM_OUTSIDE = TaskCtl.cancel("Cancelled from outside the task manager")
_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
_reschedule = trio.lowlevel.reschedule
_Cancelled = trio.Cancelled


@attrs.frozen
class Retrying:
    """What a task with a retry policy needs to run its body again (internal)."""

    policy: RetryPolicy
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


async def run_task(
    handle: AsyncTaskHandle,
    starter: trio.lowlevel.Task,
    admission: Admission | None = None,
    timeout: float | None = None,
    retrying: Retrying | None = None,
) -> None:
    """Drive ``handle``'s body to its end and report exactly one terminal TaskCtl.

    The task first waits until its ``admission`` holds a slot of each of its
    concurrency limits (it is queued meanwhile), then runs its body under
    ``timeout``, again as ``retrying`` allows. Exceptions from the body end
    the task FAIL (or CANCEL for :class:`WaitCancelled`) and go no further.
    A ``trio.Cancelled`` ends the task CANCEL and stops here too: this is the
    top of the task, so the cancelled scope around it (``stop_all`` cancels
    the tasks' shared nursery) could only end the task, as returning does.
    So do the Cancelleds a nursery of the body gathers in a group. Other
    BaseExceptions (KeyboardInterrupt), alone or in a group, propagate
    after the terminal is reported, so that the user sees them.
    """
    _reschedule(starter)  # `start` returns once this step yields
    manager = handle._manager
    now = manager._now
    if bound_manager(None) is not manager:  # started from another context (a portal, another manager)
        bind_manager(manager)
    terminal: TaskCtl | None = None
    attempt = 1
    try:
        with handle._scope:
            if admission is not None and handle._queued:  # (its slot may have come free before this step)
                await _wait_for_slots(handle, admission, retrying is not None)
            if timeout is not None:
                handle._scope.deadline = trio.current_time() + timeout
            while True:
                body = handle._body
                try:
                    if body.__class__ is not AsyncGeneratorType:
                        terminal = _returned(await body)
                        handle._body = None
                    else:
                        try:
                            # Between two steps of the body: synchronous bookkeeping only (invariant 2).
                            async for item in body:
                                if item.__class__ is TaskCtl:
                                    if item.signal is _PROGRESS:
                                        if retrying is not None:
                                            item = attrs.evolve(item, attempt=attempt)
                                        handle._state = item
                                        watchers = handle._watchers
                                        if watchers is not None:  # report(), inlined on the hottest path
                                            watchers._push_progress((handle, item, now(), "running"))
                                        continue
                                    terminal = item
                                else:
                                    terminal = _not_a_ctl(handle, item)
                                break
                            else:
                                terminal = _DONE
                        except BaseException:
                            if body.ag_frame is not None:  # the runner itself failed between two steps
                                await _close_here(handle, body)  # still inside the scopes the body is in
                            raise
                        # A body that raised has finished already: only one that yielded its
                        # terminal is still open. Its finally blocks run now, inside the scope.
                        try:
                            await body.aclose()
                        except BaseExceptionGroup as group:  # from a nursery the body yielded inside
                            rest = _besides_closing(group)
                            if rest is not None:
                                raise rest from None
                        finally:
                            handle._body = None
                            if body.ag_frame is not None:  # its cleanup yielded: "ignored GeneratorExit"
                                await _run_out(handle, body)
                    break
                except Exception as exc:
                    if (
                        terminal is not None or retrying is None
                        or handle._body is None  # the runner failed, not the body: _close_here closed it
                        or not _retries(handle, retrying.policy, attempt, exc)
                    ):  # fmt: skip
                        raise
                    attempt += 1  # the backoff is the next attempt's: a cancel during it ends with its number
                    await _back_off(handle, retrying, attempt, exc)
    except _Cancelled:  # first: the usual way out of a cancelled task, and the cheapest to match
        if terminal is None:
            terminal = cancelled_terminal(handle, timeout)
        # The task ends here, as the cancelled scope around it would end it; the finally reports it.
    except Exception as exc:
        if terminal is None:
            terminal = _failed(handle, exc)
        else:
            _log_cleanup_error(handle, exc)
    except BaseException as exc:
        if not isinstance(exc, BaseExceptionGroup):
            if terminal is None:
                terminal = _interrupted(handle, exc, timeout)
            _escaping(handle)
            raise  # nothing else here refers to the exception: no cycle through this frame for the GC
        failure, rest = exc.split(Exception)
        if rest is not None and rest.split(_Cancelled)[1] is None:
            rest = None  # only Cancelleds besides (from a nursery of the body): they end here, as one does
        if terminal is None:
            terminal = _failed(handle, failure) if failure is not None else _interrupted(handle, exc, timeout)
        elif failure is not None:
            _log_cleanup_error(handle, failure)
        try:
            if rest is not None:
                _escaping(handle)
            if rest is exc:
                raise
            if rest is not None:
                raise rest from None
        finally:
            failure = rest = None  # the traceback keeps this frame alive: let go of the exceptions
    finally:
        body = handle._body  # None once the body has ended normally (or between two attempts)
        handle._body = None
        if admission is not None:
            admission.release()
        if terminal is None:
            terminal = cancelled_terminal(handle, timeout)
        if retrying is not None:
            terminal = attrs.evolve(terminal, attempt=attempt)
        try:
            manager._task_ended(handle, terminal)
        finally:  # (even when a callback raised a KeyboardInterrupt)
            if body is not None:  # one that never began: cancelled while queued, or during a retry's back-off
                if body.__class__ is CoroutineType:
                    body.close()  # no "never awaited" warning
                elif body.ag_frame is not None:  # (None: it raised, and has finished)
                    await body.aclose()  # not started: no code of it runs


async def _close_here(handle: AsyncTaskHandle, body: Any) -> None:
    """Close a body left suspended at a yield by a failure of the runner between two steps, in the
    scopes it is in (a new scope around it would exit out of order with the body's own).

    The runner's failure is what decides the task's end: an error the close raises is logged and a
    cancel that cuts it short is dropped; only an interrupt (KeyboardInterrupt) goes on in its place.
    """
    handle._body = None  # (so the failure is not retried: it is the runner's, not the body's)
    try:
        try:
            await body.aclose()
        finally:
            if body.ag_frame is not None:
                await _run_out(handle, body)
    except BaseException as exc:
        interrupt: BaseException | None
        errors: BaseException | None
        if isinstance(exc, BaseExceptionGroup):
            interrupt = exc.split((GeneratorExit, trio.Cancelled, Exception))[1]
            errors = exc.split(Exception)[0]
        else:
            interrupt = None if isinstance(exc, (GeneratorExit, trio.Cancelled, Exception)) else exc
            errors = exc if isinstance(exc, Exception) else None
        if interrupt is not None:
            raise interrupt from None
        if errors is not None:
            logger.error(  # noqa: TRY400 - the error logged is not the one being handled, but part of it
                "task %s:%s raised while being closed after the runner failed between two of its steps",
                handle.task_type,
                handle.task_id,
                exc_info=errors,
            )


_MANY_CLEANUP_YIELDS = 100


async def _run_out(handle: AsyncTaskHandle, body: Any) -> None:
    """Let a body whose cleanup yielded after its terminal finish that cleanup (Python cannot close it:
    it "ignored GeneratorExit"), ignoring what it yields, so that any nursery or scope it is in exits.

    Past _MANY_CLEANUP_YIELDS yields the task's scope is cancelled (the body's next wait raises
    Cancelled) and other tasks get to run between two resumes; a body is never left suspended in
    its scopes, which would corrupt Trio's.
    """
    resumes = 0
    while body.ag_frame is not None:
        resumes += 1
        if resumes > _MANY_CLEANUP_YIELDS:
            if resumes == _MANY_CLEANUP_YIELDS + 1:
                logger.error(
                    "task %s:%s yields again and again in its cleanup; "
                    "its cancel scope is cancelled, and it is resumed until it ends",
                    handle.task_type,
                    handle.task_id,
                )
                handle._scope.cancel()
            await trio.lowlevel.cancel_shielded_checkpoint()
        try:
            await body.__anext__()
        except (StopAsyncIteration, GeneratorExit):
            return
        except BaseExceptionGroup as group:
            rest = _besides_closing(group)
            if rest is not None:
                raise rest from None
            return


def _besides_closing(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """What closing a body raised besides the GeneratorExit that closed it (a nursery the body
    yielded inside wraps that GeneratorExit in a group), or None."""
    return group.split(GeneratorExit)[1]


def _escaping(handle: AsyncTaskHandle) -> None:
    """An exception is about to leave the task: let its nursery close, so that it reaches the manager's block."""
    if handle._generation is not None:
        handle._generation.release()


async def _wait_for_slots(handle: AsyncTaskHandle, admission: Admission, retrying: bool) -> None:
    """Wait while queued behind a full concurrency limit; say so when the body may begin
    (as attempt 1, for a task with a retry policy)."""
    try:
        await admission.granted.wait()
        await _checkpoint_if_cancelled()  # cancelled just as its last slot came free: never begin
    finally:
        handle._queued = False
    report(handle, _STARTED_FIRST_ATTEMPT if retrying else _STARTED)


def _retries(handle: AsyncTaskHandle, policy: RetryPolicy, attempt: int, exc: Exception) -> bool:
    """Run again? Not once the attempts are used up, nor once a cancel has been requested or has
    reached the task: a cancel from outside the manager, or its deadline passing, perhaps while the
    body ran synchronous code (the runner is in the task's scope: the effective deadline is then
    -inf, or a time that has come though Trio has not cancelled anything yet)."""
    return (
        attempt < policy.attempts
        and not handle.is_cancelled
        and trio.current_effective_deadline() > trio.current_time()
        and policy.retries(exc)
    )


async def _back_off(handle: AsyncTaskHandle, retrying: Retrying, attempt: int, exc: Exception) -> None:
    """Wait before attempt ``attempt``, the one after the attempt that raised ``exc``, and make its body;
    a cancel meanwhile ends the task."""
    failed = attempt - 1
    policy = retrying.policy
    delay = policy.delay(failed)
    error = error_text(exc)
    logger.warning(
        "task %s:%s attempt %d of %d failed (%s); retrying in %gs",
        handle.task_type,
        handle.task_id,
        failed,
        policy.attempts,
        error,
        delay,
        exc_info=exc,
    )
    message = f"Attempt {failed} of {policy.attempts} failed: {error}; retrying in {delay:g}s"
    report(handle, TaskCtl(_PROGRESS, message, None, 0, attempt))
    handle._body = None  # no body is running: a cancel request now cancels at once
    await trio.sleep(delay)
    handle._body = retrying.func(handle, *retrying.args, **retrying.kwargs)


def cancelled_terminal(handle: AsyncTaskHandle, timeout: float | None = None) -> TaskCtl:
    """The terminal of a task whose scope, or a scope around it, was cancelled.

    The first of them names the end: the manager's own cancel (``cancel``,
    ``stop_all``, closing) names itself; a deadline is a FAIL with
    :class:`TaskTimeout`; anything else came from outside the manager. The
    records decide, not the Cancelled that ended the task: that one can be
    a scope's inside the body (a ``trio.sleep`` ending at the same instant),
    let through because a scope around it was cancelled too.
    """
    if handle._cancel_ctl is not None:  # (a cancel of this task, set only if it came first)
        return handle._cancel_ctl
    generation = handle._generation
    stop_ctl = None if generation is None else generation.stop_ctl
    stopped_at = math.inf if generation is None or stop_ctl is None else generation.stopped_at
    outside_at = math.inf if generation is None else generation.outside_at
    if timeout is not None:
        deadline = handle._scope.deadline
        if deadline <= trio.current_time() and deadline <= min(stopped_at, outside_at):
            error = TaskTimeout(f"{handle.task_type}:{handle.task_id}", timeout)
            logger.error("%s", error)
            return TaskCtl.fail(str(error), error)
    if stop_ctl is not None and stopped_at < outside_at:
        return stop_ctl  # (and the end of the task keeps is_cancelled True)
    return CANCELLED_FROM_OUTSIDE


def _returned(value: Any) -> TaskCtl:
    """The terminal of a coroutine body that returned ``value``."""
    if value is None:
        return _DONE
    if value.__class__ is TaskCtl and value.is_terminal:
        return value
    return TaskCtl.success(data=value)


def _not_a_ctl(handle: AsyncTaskHandle, item: object) -> TaskCtl:
    message = (
        f"task {handle.task_type}:{handle.task_id} yielded {safe_repr(item)} ({type(item).__name__}), "
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
        return TaskCtl.cancel(f"Cancelled: {next(leaves(exc))}")  # the first wait, however deep the nurseries
    errors = list(leaves(exc))  # a group of one error from the body's nurseries is named by that error
    message = error_text(errors[0] if len(errors) == 1 else exc)  # (a broken __str__ must not break the runner)
    logger.error("task %s:%s failed: %s", handle.task_type, handle.task_id, message, exc_info=exc)
    return TaskCtl.fail(message, exc)


def _interrupted(handle: AsyncTaskHandle, exc: BaseException, timeout: float | None) -> TaskCtl:
    """The terminal of a body ended by a BaseException: Cancelled, KeyboardInterrupt..."""
    if isinstance(exc, trio.Cancelled) or (
        isinstance(exc, BaseExceptionGroup) and exc.split(trio.Cancelled)[1] is None
    ):
        return cancelled_terminal(handle, timeout)
    if isinstance(exc, BaseExceptionGroup):  # from a nursery of the body: it is the interrupt's end
        exc = next(leaf for leaf in leaves(exc) if not isinstance(leaf, trio.Cancelled))
    message = f"interrupted by {type(exc).__name__}"
    logger.error("task %s:%s %s", handle.task_type, handle.task_id, message, exc_info=exc)
    return TaskCtl.fail(message, exc)


def leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions in ``exc``, a group perhaps nested, in order; ``exc`` itself if it is none."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


def _log_cleanup_error(handle: AsyncTaskHandle, exc: BaseException) -> None:
    logger.error(
        "task %s:%s raised while closing, after it had ended; its outcome stands",
        handle.task_type,
        handle.task_id,
        exc_info=exc,
    )
