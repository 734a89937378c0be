"""The module-level ``task`` object: the seed's global API, bound to the current manager."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, final

import trio

from ._errors import NoTaskManager

if TYPE_CHECKING:
    from ._manager import TaskManager

__all__ = ["bind_manager", "bound_manager", "current_manager", "task", "unbind_manager"]

_current: ContextVar[TaskManager] = ContextVar("trio_tasks.current_manager")
bind_manager = _current.set
unbind_manager = _current.reset
bound_manager = _current.get

_NO_MANAGER = (
    "no task manager is open here; open one with "
    "`async with trio_tasks.open_task_manager():` and use `task` inside that block "
    "(or in tasks started from it)"
)
_OTHER_RUN = (
    "the task manager open here, {manager!r}, runs in another Trio run: this code runs in another thread "
    "(one started from its block, with a copy of its context) or in a trio.run of its own there. "
    "From another thread, drive the manager through manager.portal()"
)


def current_manager() -> TaskManager:
    """The :class:`TaskManager` of the innermost ``open_task_manager`` block.

    Tasks started by a manager see that manager here too. Another thread
    (and a ``trio.run`` of its own there) does not, even with a copy of the
    block's context, as ``trio.to_thread.run_sync`` gives it: a manager is
    used only from its own run.

    Raises:
        NoTaskManager: no manager is open in this context, or the one open
            here belongs to another Trio run.
    """
    try:
        manager = _current.get()
    except LookupError:
        raise NoTaskManager(_NO_MANAGER) from None
    try:
        token: trio.lowlevel.TrioToken | None = trio.lowlevel.current_trio_token()
    except RuntimeError:  # not in Trio at all: a thread started from the block
        token = None
    if token is not manager._trio_token:
        raise NoTaskManager(_OTHER_RUN.format(manager=manager))
    return manager


@final
class _TaskFacade:
    """The seed's global ``task`` API, bound to the current task manager.

    Inside ``async with open_task_manager():`` (and inside the tasks it runs),
    ``task.start``, ``task.cancel``, ``task.get_state`` and every other public
    attribute of :class:`TaskManager` refer to that manager. Outside any
    manager (and in another thread or Trio run than the manager's) they
    raise :class:`NoTaskManager`::

        async with trio_tasks.open_task_manager():
            await task.start("my_task", "T001", "chat-1", plugin, prompt="Generate report")
            print(task.get_running_tasks())   # ['my_task:T001']
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        from ._manager import TaskManager

        if name.startswith("_") or not hasattr(TaskManager, name):
            raise AttributeError(f"trio_tasks.task has no attribute {name!r}")
        return getattr(current_manager(), name)

    def __repr__(self) -> str:
        return "<trio_tasks.task: the current TaskManager>"


if TYPE_CHECKING:
    task: TaskManager
else:
    task = _TaskFacade()
