"""The exceptions trio_tasks raises."""

from __future__ import annotations

from ._checks import safe_repr

__all__ = [
    "ManagerClosed",
    "NoTaskManager",
    "TaskAlreadyRunning",
    "TaskError",
    "TaskTimeout",
    "TooManyTasks",
    "UnknownTaskType",
    "WaitCancelled",
]


class TaskError(Exception):
    """Base class of every error trio_tasks raises on purpose.

    >>> issubclass(UnknownTaskType, TaskError)
    True
    """


class UnknownTaskType(TaskError, ValueError):
    """``start`` was asked for a task type its plugin has not mounted.

    It is also a :class:`ValueError`, as the seed's implementation raised::

        try:
            await task.start("rendr", "R1", "chat-1", plugin)
        except UnknownTaskType as error:
            print(error)  # plugin 'Video' has no task type 'rendr' (mounted: 'render'); mount it with ...
    """


class TaskAlreadyRunning(TaskError, ValueError):
    """``start`` was asked for a (task_type, task_id) that is still running.

    Wait for it to end, or cancel it, before starting it again::

        if task.is_running("render", "R1"):
            await task.cancel("render", "R1")
        await task.start("render", "R1", "chat-1", plugin, scene="intro")
    """


class TooManyTasks(TaskError, ValueError):
    """``start`` was refused: a concurrency limit with ``on_limit="reject"`` is full.

    The message names the limit. Wait for a task to end, or mount the task
    type with ``on_limit="queue"`` to have starts wait for a free slot::

        @plugin.mount_async_task("render", max_concurrent=2, on_limit="reject")
        async def render(handle): ...
    """


class TaskTimeout(TaskError, TimeoutError):
    """A task ran past the ``task_timeout`` it was started with.

    It is not raised to anyone: the task ends FAIL with this error as the
    terminal TaskCtl's ``data``::

        await task.start("render", "R1", "chat-1", plugin, scene="intro", task_timeout=600)
        # ... 600 seconds later, if still running:
        # get_state(...).signal is TaskSignal.FAIL and .data is a TaskTimeout

    Like the built-in exceptions, it keeps its arguments in ``args``, so
    that a terminal holding it can be copied and pickled:

    >>> import pickle
    >>> str(pickle.loads(pickle.dumps(TaskTimeout("render:R1", 600))))
    'task render:R1 ran past its task_timeout of 600 seconds'

    Attributes:
        task: the task, as ``"task_type:task_id"``.
        timeout: the limit, in seconds.
    """

    def __init__(self, task: str, timeout: float) -> None:
        super().__init__(task, timeout)
        self.task = task
        self.timeout = timeout

    def __str__(self) -> str:
        seconds = f"{self.timeout:g}" if isinstance(self.timeout, float) else safe_repr(self.timeout)
        return f"task {self.task} ran past its task_timeout of {seconds} seconds"


class NoTaskManager(TaskError, RuntimeError):
    """The :data:`trio_tasks.task` object was used outside any task manager
    (or in another thread, or another Trio run, than the manager's: use its
    :meth:`~trio_tasks.TaskManager.portal` there).

    Open one first::

        async with trio_tasks.open_task_manager():
            await trio_tasks.task.start("render", "R1", "chat-1", plugin, scene="intro")
    """


class ManagerClosed(TaskError, RuntimeError):
    """The task manager has closed (or is closing) and accepts no new work.

    ::

        async with open_task_manager() as manager:
            ...
        await manager.start("render", "R2", "chat-1", plugin)  # raises ManagerClosed
    """


class WaitCancelled(TaskError):
    """A pending ``handle.wait(key)`` was cancelled by ``cancel_wait`` or ``cancel_all``.

    If it escapes the task body, the task ends with a CANCEL signal; a body
    may catch it and go on::

        try:
            approved = await handle.wait("approval")
        except WaitCancelled:
            yield TaskCtl.fail("The approval request was withdrawn")
            return

    It keeps ``key`` in ``args``, so that it can be copied and pickled.

    Attributes:
        key: the wait point that was cancelled.
    """

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"wait {safe_repr(self.key)} was cancelled"
