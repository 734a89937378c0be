"""Async terminal callbacks: run in the task manager's own nursery, given a grace period at close."""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable
from typing import TYPE_CHECKING, final

import trio

from ._generations import hand_over
from ._groups import tick

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from ._groups import Countdown
    from ._handle import AsyncTaskHandle

__all__ = ["CallbackNursery"]

logger = logging.getLogger("trio_tasks")


@final
class CallbackNursery:
    """Where async ``on_terminal`` callbacks run (internal; one per task manager).

    Trio has no ``asyncio.create_task``: an async callback is started here,
    in a nursery of the manager's own. It stays open until every task has
    ended (a task ending late must still find it open), then gives the
    callbacks still running the manager's grace period and cancels the rest.
    """

    __slots__ = ("_all_ended", "_nursery")

    def __init__(self) -> None:
        self._nursery: trio.Nursery | None = None
        self._all_ended = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None]) -> None:
        """The nursery's own task; start it with ``nursery.start(callbacks.run)``."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if not hand_over(task_status):  # an interrupt reached the manager's opening
                return
            with trio.CancelScope(shield=True):  # a task ending late must still find it open
                await self._all_ended.wait()

    def start(self, handle: AsyncTaskHandle, awaitable: Awaitable[object], countdowns: list[Countdown] | None) -> None:
        """Run what an async ``on_terminal`` callback of ``handle`` returned; ``countdowns`` (the
        cancels waiting for the task's end) are told once it has begun."""
        assert self._nursery is not None
        name = f"trio_tasks:on_terminal:{handle.task_type}:{handle.task_id}"
        self._nursery.start_soon(_await_callback, handle, awaitable, countdowns, name=name)

    def close(self, grace: float) -> None:
        """Every task has ended: callbacks get ``grace`` seconds more, then are cancelled."""
        if self._nursery is not None:
            if grace:
                self._nursery.cancel_scope.deadline = trio.current_time() + grace
            else:
                self._nursery.cancel_scope.cancel()
        self._all_ended.set()


async def _await_callback(
    handle: AsyncTaskHandle, awaitable: Awaitable[object], countdowns: list[Countdown] | None
) -> None:
    tick(countdowns)  # a waiting cancel resumes after this step: by then the callback has begun
    try:
        await awaitable
    except Exception:
        logger.exception("async on_terminal callback of task %s:%s raised; ignored", handle.task_type, handle.task_id)
    except trio.Cancelled:  # the top of this task: it ends here (as a task's runner does), not in a group
        _cut_short(handle)
    except BaseExceptionGroup as group:  # from a nursery inside the callback: the same, for each part
        cancelled, rest = group.split(trio.Cancelled)
        errors, others = (None, None) if rest is None else rest.split(Exception)
        if errors is not None:
            logger.exception(
                "async on_terminal callback of task %s:%s raised; ignored", handle.task_type, handle.task_id,
                exc_info=errors,
            )  # fmt: skip
        if cancelled is not None:
            _cut_short(handle)
        if others is not None:  # (a KeyboardInterrupt): it goes on
            raise others from None


def _cut_short(handle: AsyncTaskHandle) -> None:
    logger.warning(
        "async on_terminal callback of task %s:%s was cancelled: the task manager closed, or a cancel around it",
        handle.task_type,
        handle.task_id,
    )
