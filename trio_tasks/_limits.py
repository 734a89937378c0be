"""Concurrency limits: how many tasks of a type, or of a manager, run at once."""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING, final

import trio

from ._ctl import TaskCtl, TaskSignal
from ._errors import TooManyTasks
from ._watch import report

if TYPE_CHECKING:
    from ._handle import AsyncTaskHandle

__all__ = ["Admission", "Limiter"]

_numbers = itertools.count()  # start order, across managers (only its order within one counts)


@final
class Limiter:
    """One ``max_concurrent`` limit of a task manager (internal).

    ``live`` counts the accepted tasks it covers that have not ended, queued
    ones included: with ``on_limit="reject"`` a start that would exceed the
    limit is refused (:meth:`check`), so no task ever queues on it. With
    ``on_limit="queue"`` a task holds one of ``limit`` slots while its body
    runs; the others wait in ``waiting``, first come (first ``start``) first
    served: a heap in the order of the starts, so that a task that waited
    at another limit first still goes before the tasks started after it.
    """

    __slots__ = ("limit", "live", "queued", "reject", "running", "waiting", "what")

    def __init__(self, limit: int, on_limit: str, what: str) -> None:
        self.limit = limit
        self.reject = on_limit == "reject"
        self.what = what
        self.live = 0
        self.running = 0  # slots held
        self.waiting: list[tuple[int, Admission]] = []  # a heap by start order; abandoned ones are skipped
        self.queued = 0  # the admissions in `waiting` that still wait

    def check(self, task_type: str, task_id: str) -> None:
        """Raise TooManyTasks if this is a reject-limit and it is full (the caller counts the task in)."""
        if self.reject and self.live >= self.limit:
            raise TooManyTasks(
                f"cannot start {task_type}:{task_id}: {self.what} allows at most max_concurrent={self.limit} "
                f"tasks at once and has {self.live} (running or queued); wait for one to end, or use on_limit='queue'"
            )

    def first_waiting(self) -> Admission | None:
        """The admission that started first among those waiting here, or None."""
        waiting = self.waiting
        while waiting and waiting[0][1].abandoned:
            heapq.heappop(waiting)
        return waiting[0][1] if waiting else None

    def forget_abandoned(self) -> None:
        """An admission waiting here was abandoned (its task ended). Abandoned ones leave the heap when they
        reach its top; behind a first one that waits long they would pile up, so once they are most of the
        heap it is rebuilt without them (a rebuild per as many abandons as still wait: amortized O(log n))."""
        if len(self.waiting) > 2 * self.queued + 8:
            self.waiting = [entry for entry in self.waiting if not entry[1].abandoned]
            heapq.heapify(self.waiting)

    def hand_on(self) -> None:
        """Give free slots to the tasks that started first."""
        while self.running < self.limit and (admission := self.first_waiting()) is not None:
            heapq.heappop(self.waiting)
            self.queued -= 1
            self.running += 1
            admission.held += 1
            admission.advance()


@final
class Admission:
    """One task's way through its limits (internal): the slots it holds, in order, and
    ``granted``, set once it holds them all (its body may begin).

    Slots are taken synchronously at ``start`` and when another task gives one
    back, so the queue order is the order of the starts (``number``).
    """

    __slots__ = ("abandoned", "attempt", "granted", "handle", "held", "limits", "number", "slots")

    def __init__(self, handle: AsyncTaskHandle, limits: tuple[Limiter, ...], attempt: int | None = None) -> None:
        self.handle = handle
        self.attempt = attempt  # 1 for a task with a retry policy: its reports carry the attempt
        self.limits = limits
        self.slots = [limiter for limiter in limits if not limiter.reject]
        self.held = 0  # slots[:held] are held
        self.abandoned = False
        self.number = next(_numbers)
        self.granted = trio.Event()
        for limiter in limits:
            limiter.live += 1
        self.advance()

    def advance(self) -> None:
        """Take the next slots while they are free; wait in line at the first that is not."""
        slots = self.slots
        while self.held < len(slots):
            limiter = slots[self.held]
            first = limiter.first_waiting()
            if limiter.running < limiter.limit and (first is None or first.number > self.number):
                limiter.running += 1
                self.held += 1
                continue
            heapq.heappush(limiter.waiting, (self.number, self))
            limiter.queued += 1
            self.handle._queued = True
            message = f"Queued: {limiter.what} runs at most {limiter.limit} at once"
            report(self.handle, TaskCtl(TaskSignal.PROGRESS, message, None, 0, self.attempt))
            return
        self.granted.set()

    def release(self) -> None:
        """The task has ended (or never began): count it out, give its slots on, leave the line."""
        for limiter in self.limits:
            limiter.live -= 1
        if self.held < len(self.slots) and not self.abandoned:
            self.abandoned = True
            waited_at = self.slots[self.held]
            waited_at.queued -= 1
            waited_at.forget_abandoned()
        held = self.slots[: self.held]
        self.held = 0
        for limiter in held:  # every slot back before any is handed on: the next in line may need several
            limiter.running -= 1
        for limiter in held:
            limiter.hand_on()
