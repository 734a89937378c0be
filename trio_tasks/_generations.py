"""Generations: the nurseries tasks run in, so that stopping every task is one cancel."""

from __future__ import annotations

from typing import final

import trio

from ._ctl import TaskCtl

__all__ = ["Generation"]


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
    """

    __slots__ = ("ended", "nursery", "stop_ctl")

    def __init__(self) -> None:
        self.nursery: trio.Nursery | None = None
        self.ended = trio.Event()  # set once the nursery has closed: every task in it has ended
        self.stop_ctl: TaskCtl | None = None  # the CANCEL its tasks report, once stopped

    async def run(self, live: list[Generation], *, task_status: trio.TaskStatus[None]) -> None:
        """Hold the nursery open until :meth:`cancel`; start with ``root.start(generation.run, live)``.

        ``live`` is the manager's list of generations not yet ended: this one
        is in it from when it has started until its last task has ended.
        """
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                live.append(self)
                task_status.started()
                await trio.sleep_forever()
        finally:
            if self in live:
                live.remove(self)
            self.ended.set()

    def stop(self, ctl: TaskCtl) -> None:
        """Cancel every task in this generation; they end with ``ctl`` unless a cancel of their own came first.

        Later starts must go to a newer generation.
        """
        if self.stop_ctl is None:
            self.stop_ctl = ctl
        assert self.nursery is not None
        self.nursery.cancel_scope.cancel()
