"""trio_tasks: long-lived background tasks on Trio's structured concurrency.

Tasks report progress, wait for outside events, can be cancelled, and tell
the agent when they end, each with exactly one terminal outcome::

    import trio
    from trio_tasks import Plugin, TaskCtl, open_task_manager, task

    plugin = Plugin(name="Demo", module_name="demo")

    @plugin.mount_async_task("hello")
    async def hello(handle, name: str):
        yield TaskCtl.report_progress("Thinking...", 50)
        yield TaskCtl.success(f"Hello, {name}!")

    async def main():
        async with open_task_manager():
            await task.start("hello", "H1", "chat-1", plugin, name="Trio",
                             on_terminal=lambda ctl: print(ctl.message))

    trio.run(main)
"""

from ._ctl import TaskCtl, TaskSignal
from ._errors import (
    ManagerClosed,
    NoTaskManager,
    TaskAlreadyRunning,
    TaskError,
    TaskTimeout,
    TooManyTasks,
    UnknownTaskType,
    WaitCancelled,
)
from ._facade import task
from ._handle import AgentNotice, AsyncTaskHandle
from ._info import TaskInfo
from ._ki import protect_library as _protect_library
from ._manager import TaskManager, open_task_manager
from ._plugin import Plugin
from ._portal import TaskPortal
from ._retry import RetryPolicy
from ._watch import TaskEvent, TaskEvents

_protect_library()  # the library's own code holds a Ctrl-C back to a checkpoint (see _ki)

__all__ = [
    "AgentNotice",
    "AsyncTaskHandle",
    "ManagerClosed",
    "NoTaskManager",
    "Plugin",
    "RetryPolicy",
    "TaskAlreadyRunning",
    "TaskCtl",
    "TaskError",
    "TaskEvent",
    "TaskEvents",
    "TaskInfo",
    "TaskManager",
    "TaskPortal",
    "TaskSignal",
    "TaskTimeout",
    "TooManyTasks",
    "UnknownTaskType",
    "WaitCancelled",
    "open_task_manager",
    "task",
]

__version__ = "0.1.0"
