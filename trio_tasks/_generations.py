"""Generations: the nurseries tasks run in, so that stopping every task is one cancel."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import NoReturn, final

import trio

from ._ctl import TaskCtl

__all__ = ["STOP_REASON", "Generation", "hand_over"]

STOP_REASON = "trio_tasks stopped every task (an unfiltered stop_all() or the manager's close)"
"""The reason of a generation's cancel: a body's Cancelled says who cancelled it."""


def hand_over(task_status: trio.TaskStatus[None]) -> bool:
    """Call ``task_status.started()``; False if Trio left the task in ``start()``'s own nursery (internal).

    Trio does that when the start was cancelled: here, when an interrupt (a
    Ctrl-C) reached the task waiting in ``start()``, as it may even in a
    shielded scope. A task that holds a nursery open in a shield must then
    end by itself, or ``start()`` waits for it for ever; the interrupt goes
    on from there::

        if not hand_over(task_status):
            return
    """
    waiting_in = trio.lowlevel.current_task().parent_nursery
    task_status.started()
    return trio.lowlevel.current_task().parent_nursery is not waiting_in


@final
class Generation:
    """A nursery of tasks that is stopped as a whole (internal).

    The manager starts each task in its current generation. ``stop_all()``
    without filters opens a new current generation for the starts that
    follow and cancels the older ones: one cancel for all their tasks instead
    of one per task. The Cancelled then stops in each task's runner, which is
    the top of the task, instead of leaving the task for Trio to gather into
    an exception group. Cancelling one task, or a filtered ``stop_all``,
    cancels that task's own scope instead.

    Its tasks end named by the first stop that reached them, so it records
    when it was stopped, and when a cancel the manager did not make (a
    scope around it) reached its nursery first: a parked lookout task in the
    nursery notes that, in the abort function Trio calls with the cancel.
    """

    __slots__ = (
        "_hold", "_lookout", "asked", "closing", "ended", "nursery", "outside_at", "stop_ctl",
        "stopped_at",
    )  # fmt: skip

    nursery: trio.Nursery  # set by run(), before the generation is handed over

    def __init__(self) -> None:
        self._hold = trio.CancelScope(shield=True)  # keeps the nursery open until stop() or release()
        self.ended = trio.Event()  # set once the nursery has closed: every task in it has ended
        self.stop_ctl: TaskCtl | None = None  # the CANCEL its tasks report, once stopped
        self.stopped_at = math.inf  # when it was stopped (a task's deadline that came first names its end)
        self.outside_at = math.inf  # when a cancel around the manager reached it, if that came before stop()
        self._lookout = trio.CancelScope()  # around _look_out(), which has nothing to note after release()
        self.closing = False  # no task may start in it any more
        self.asked: set[trio.Event] = set()  # the cancel_requested() events of its running tasks that wait

    async def run(self, live: list[Generation], *, task_status: trio.TaskStatus[None]) -> None:
        """Hold the nursery open until :meth:`stop` or :meth:`release`; start with ``root.start(generation.run, live)``.

        ``live`` is the manager's list of generations not yet ended: this one
        is in it from when it has started until its last task has ended.
        """
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                live.append(self)
                nursery.start_soon(self._look_out, name="trio_tasks:generation lookout")
                if not hand_over(task_status):
                    self.release()
                    return
                # Now in the manager's nursery, under the scopes around the manager: cancelled already?
                if trio.current_effective_deadline() == -math.inf:
                    self.outside_at = trio.current_time()
                # Shielded: a cancel around the manager cancels the tasks but must not close the
                # nursery to the starts that may still come before the manager's close stops it.
                with self._hold:
                    await trio.sleep_forever()
        finally:
            if self in live:
                live.remove(self)
            self.ended.set()

    async def _look_out(self) -> None:
        """Park in the nursery until a cancel reaches it (see :meth:`_note_a_cancel`)."""
        with self._lookout, contextlib.suppress(trio.Cancelled):  # (the top of this task: it runs nothing else)
            await trio.lowlevel.wait_task_rescheduled(self._note_a_cancel)

    def _note_a_cancel(self, raise_cancel: Callable[[], NoReturn]) -> trio.lowlevel.Abort:
        """A cancel reached the lookout: if neither the nursery's own scope (cancelled by :meth:`stop`)
        nor the lookout's (cancelled by :meth:`release`, which notes an interrupt itself) was cancelled,
        it came from a scope around the manager (or from an interrupt in another generation, whose
        cancel of the manager's nursery is named the same way). Note when: Trio calls
        this within that cancel (or, if the cancel came before the lookout first parked, then; and
        :meth:`run` notes one that came before the nursery opened). A deadline around the manager is
        noted when the run loop sees it: if that is late, after the task's own deadline passed as well,
        the task's is taken to be first."""
        if not (self.nursery.cancel_scope.cancel_called or self._lookout.cancel_called):
            self.outside_at = min(self.outside_at, trio.current_time())
        return trio.lowlevel.Abort.SUCCEEDED

    def stop(self, ctl: TaskCtl) -> None:
        """Cancel every task in this generation; they end with ``ctl`` unless a cancel of their own came first.

        Later starts must go to a newer generation.
        """
        if self.stop_ctl is None:
            self.stop_ctl = ctl
            self.stopped_at = trio.current_time()
        for event in self.asked:  # its tasks are cancelled: a cancel was requested
            event.set()
        self.asked.clear()
        self.nursery.cancel_scope.cancel(reason=STOP_REASON)
        self.release()

    def release(self) -> None:
        """Let the nursery close once its tasks have ended; no task may start in it any more.

        A task's runner calls this before an exception leaves the task (a
        KeyboardInterrupt, a group that is not only Cancelled): Trio has then
        cancelled the nursery, and the exception must reach the manager's block.
        """
        self.closing = True
        if self.stop_ctl is None:  # an interrupt (it came from the user): the others end as cancelled from outside
            self.outside_at = min(self.outside_at, trio.current_time())
        self._lookout.cancel()
        self._hold.cancel()
