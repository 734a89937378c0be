"""TaskPortal: drive a task manager from another thread (a webhook server, a GUI)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, final

import trio

from ._checks import MadeByTheLibrary, check_str
from ._ctl import TaskCtl
from ._errors import ManagerClosed

if TYPE_CHECKING:
    from ._handle import AsyncTaskHandle
    from ._manager import TaskManager, TerminalCallback
    from ._plugin import Plugin

__all__ = ["TaskPortal"]

T = TypeVar("T")


def _in_trio_thread() -> bool:
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


@final
class TaskPortal(metaclass=MadeByTheLibrary):
    """The task manager's API for other threads; get one with ``manager.portal()``.

    Each method blocks its thread until Trio has done the call and returns
    its result (or raises its error). They have the manager's signatures,
    plus :meth:`notify` and :meth:`cancel_wait`, which reach a task's wait
    points by its type and id::

        portal = manager.portal()           # in Trio, then hand it to the thread

        def on_webhook(request):            # in the web server's thread
            portal.notify("approval", request.task_id, "approval", request.approved)

    From the moment the manager's block ends (``manager.closed``, while
    tasks may still run out their grace period) every method raises
    :class:`~trio_tasks.ManagerClosed`, and a call the end of ``trio.run``
    cuts short raises it too: a call never hangs. Called from a thread that
    runs Trio (the manager's own, or another ``trio.run``), they raise
    RuntimeError at once: in the manager's run, use the manager directly.
    """

    __slots__ = ("_manager", "_token")
    _how = "get one with `manager.portal()`"

    def __init__(self, manager: TaskManager, token: trio.lowlevel.TrioToken) -> None:
        self._manager = manager
        self._token = token

    def __repr__(self) -> str:
        return f"<TaskPortal of {self._manager!r}>"

    # -- the manager's API ------------------------------------------------------------------

    def start(
        self,
        /,
        task_type: str,
        task_id: str,
        chat_key: str,
        plugin: Plugin,
        *args: Any,
        on_terminal: TerminalCallback | None = None,
        task_timeout: float | None = None,
        **kwargs: Any,
    ) -> AsyncTaskHandle:
        """:meth:`TaskManager.start` from another thread.

        ``on_terminal`` runs in the Trio thread. Use the returned handle's
        attributes only; call its methods through this portal::

            handle = portal.start("render", "R1", "chat-1", plugin, scene="intro")
        """
        start = functools.partial(
            self._manager.start, task_type, task_id, chat_key, plugin, *args,
            on_terminal=on_terminal, task_timeout=task_timeout, **kwargs,
        )  # fmt: skip
        return self._run(start)

    def cancel(self, task_type: str, task_id: str, *, grace: float | None = None) -> bool:
        """:meth:`TaskManager.cancel` from another thread.

        ::

            portal.cancel("render", "R1", grace=5)
        """
        return self._run(functools.partial(self._manager.cancel, task_type, task_id, grace=grace))

    def stop_all(
        self,
        *,
        plugin: Plugin | None = None,
        task_type: str | None = None,
        chat_key: str | None = None,
        grace: float | None = None,
    ) -> int:
        """:meth:`TaskManager.stop_all` from another thread.

        ::

            stopped = portal.stop_all(plugin=plugin)
        """
        stop_all = functools.partial(
            self._manager.stop_all, plugin=plugin, task_type=task_type, chat_key=chat_key, grace=grace
        )
        return self._run(stop_all)

    def get_state(self, task_type: str, task_id: str) -> TaskCtl | None:
        """:meth:`TaskManager.get_state` from another thread.

        ::

            state = portal.get_state("render", "R1")
        """
        return self._run_sync(functools.partial(self._manager.get_state, task_type, task_id))

    def is_running(self, task_type: str, task_id: str) -> bool:
        """:meth:`TaskManager.is_running` from another thread.

        ::

            running = portal.is_running("render", "R1")
        """
        return self._run_sync(functools.partial(self._manager.is_running, task_type, task_id))

    def get_running_tasks(
        self, *, plugin: Plugin | None = None, task_type: str | None = None, chat_key: str | None = None
    ) -> list[str]:
        """:meth:`TaskManager.get_running_tasks` from another thread.

        ::

            tasks = portal.get_running_tasks(chat_key="chat-1")
        """
        running = functools.partial(
            self._manager.get_running_tasks, plugin=plugin, task_type=task_type, chat_key=chat_key
        )
        return self._run_sync(running)

    # -- wait points ---------------------------------------------------------------------

    def notify(self, task_type: str, task_id: str, key: str, data: Any = None) -> bool:
        """``handle.notify(key, data)`` on the running task; False if it is not running or nobody waits yet.

        ::

            portal.notify("approval", "A1", "approval", True)
        """
        return self._run_sync(functools.partial(self._on_handle, task_type, task_id, "notify", key, data))

    def cancel_wait(self, task_type: str, task_id: str, key: str) -> bool:
        """``handle.cancel_wait(key)`` on the running task; False if it is not running or does not wait on ``key``.

        ::

            portal.cancel_wait("approval", "A1", "approval")
        """
        return self._run_sync(functools.partial(self._on_handle, task_type, task_id, "cancel_wait", key))

    def _on_handle(self, task_type: str, task_id: str, method: str, key: str, *args: Any) -> bool:
        check_str("wait point key", key)  # refused whether or not the task runs, as the handle would
        handle = self._manager.get_handle(task_type, task_id)
        if handle is None:
            return False
        result: bool = getattr(handle, method)(key, *args)
        return result

    # -- crossing threads ------------------------------------------------------------------

    def _check_thread(self) -> None:
        if _in_trio_thread():
            raise RuntimeError(
                "TaskPortal methods block until Trio has done the call, so they cannot be called from a "
                "thread that runs Trio: in the manager's own run use the TaskManager itself (for example "
                "`await manager.start(...)`); in another Trio run, call the portal through trio.to_thread.run_sync; "
                "from the host loop of Trio's guest mode (asyncio code), call it in a worker thread, for example "
                "with loop.run_in_executor"
            )

    def _closed(self) -> ManagerClosed:
        return ManagerClosed("the task manager has closed; its portal can do nothing more")

    def _run(self, call: Callable[[], Awaitable[T]]) -> T:
        self._check_thread()

        async def in_trio() -> T:
            if self._manager.closed:
                raise self._closed()
            return await call()

        try:
            return trio.from_thread.run(in_trio, trio_token=self._token)
        except (trio.RunFinishedError, trio.Cancelled):  # Cancelled: the run ended while it was doing the call
            raise self._closed() from None

    def _run_sync(self, call: Callable[[], T]) -> T:
        self._check_thread()

        def in_trio() -> T:
            if self._manager.closed:
                raise self._closed()
            return call()

        try:
            return trio.from_thread.run_sync(in_trio, trio_token=self._token)
        except trio.RunFinishedError:
            raise self._closed() from None
