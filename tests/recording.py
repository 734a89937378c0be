"""Shared test helpers: terminal callbacks recorded with their virtual time, and waiting for the end."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import trio

from trio_tasks import TaskCtl, TaskManager


@attrs.frozen
class Ended:
    """One terminal callback: the TaskCtl it received and the virtual time it ran."""

    ctl: TaskCtl
    at: float


def recorder(ends: list[Ended]) -> Callable[[TaskCtl], None]:
    """An ``on_terminal`` callback that appends each call to ``ends``."""
    return lambda ctl: ends.append(Ended(ctl, trio.current_time()))


def only(ends: list[Ended]) -> Ended:
    """The one ending; fails unless the callback fired exactly once."""
    assert len(ends) == 1, ends
    return ends[0]


@attrs.define
class Endings:
    """Terminal callbacks of many tasks, by task id."""

    by_task: dict[str, list[Ended]] = attrs.Factory(dict)

    def callback(self, task_id: str) -> Callable[[TaskCtl], None]:
        """The ``on_terminal`` callback for ``task_id``."""
        return recorder(self.by_task.setdefault(task_id, []))

    def only(self, task_id: str) -> Ended:
        """The one ending of ``task_id``; fails unless its callback fired exactly once."""
        return only(self.by_task[task_id])


async def wait_until_idle(manager: TaskManager, within: float = 1000) -> None:
    """Wait (on the virtual clock) until no task runs; fail rather than hang if that takes over ``within`` seconds."""
    with trio.fail_after(within):
        while manager.get_running_tasks():
            await trio.sleep(0.25)
