"""Concurrency limits: how many tasks of a type, or of a manager, run at once."""

from __future__ import annotations

from typing import final

import trio

from ._errors import TooManyTasks

__all__ = ["Limiter"]


@final
class Limiter:
    """One ``max_concurrent`` limit of a task manager (internal).

    ``live`` counts the accepted tasks it covers that have not ended, queued
    ones included; with ``on_limit="reject"`` a start that would exceed the
    limit is refused, so no task ever queues on it. With ``on_limit="queue"``
    a task takes one of ``limit`` slots before its body begins; slots are
    handed on first come, first served (a :class:`trio.Semaphore`).
    """

    __slots__ = ("limit", "live", "reject", "slots", "what")

    def __init__(self, limit: int, on_limit: str, what: str) -> None:
        self.limit = limit
        self.reject = on_limit == "reject"
        self.what = what
        self.live = 0
        self.slots = trio.Semaphore(limit)

    def check(self, task_type: str, task_id: str) -> None:
        """Raise TooManyTasks if this is a reject-limit and it is full (the caller counts the task in)."""
        if self.reject and self.live >= self.limit:
            raise TooManyTasks(
                f"cannot start {task_type}:{task_id}: {self.what} allows at most max_concurrent={self.limit} "
                f"tasks at once and {self.live} are running; wait for one to end, or use on_limit='queue'"
            )

    def queued_message(self) -> str:
        """The state of a task waiting for a slot of this limit."""
        return f"Queued: {self.what} runs at most {self.limit} at once"
