"""TaskInfo: one line of ``manager.list_tasks()``, for dashboards and chat UIs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, final

import attrs

from ._ctl import TaskCtl

if TYPE_CHECKING:
    from ._handle import AsyncTaskHandle

__all__ = ["TaskInfo", "info_of"]

Status = Literal["queued", "running", "ended"]


@final
@attrs.frozen
class TaskInfo:
    """What a task manager knows of one task, running or recently ended.

    Times are ``trio.current_time()`` values; ``elapsed`` is in seconds, up
    to now for a task that is still running::

        for info in manager.list_tasks(chat_key="chat-1"):
            print(f"{info.task_type}:{info.task_id} {info.status} {info.elapsed:.0f}s "
                  f"{info.state.message if info.state else ''}")

    Attributes:
        task_type: the mounted type the task runs.
        task_id: the id it was started with.
        chat_key: the chat it belongs to.
        plugin_name: the name of the plugin that mounted ``task_type``.
        state: the latest TaskCtl (the terminal one once it has ended), or
            None if it has reported nothing yet.
        status: ``"queued"`` (waiting for a concurrency slot), ``"running"``
            or ``"ended"``.
        started_at: when ``start`` accepted it.
        ended_at: when it ended; None while it runs.
        elapsed: ``ended_at`` (or now) minus ``started_at``.
    """

    task_type: str
    task_id: str
    chat_key: str
    plugin_name: str
    state: TaskCtl | None
    status: Status
    started_at: float
    ended_at: float | None
    elapsed: float


def info_of(handle: AsyncTaskHandle, now: float) -> TaskInfo:
    """The TaskInfo of ``handle`` at time ``now`` (internal)."""
    ended_at = handle._ended_at
    status: Status = "ended" if ended_at is not None else "queued" if handle._queued else "running"
    return TaskInfo(
        handle.task_type,
        handle.task_id,
        handle.chat_key,
        handle.plugin.name,
        handle._state,
        status,
        handle._started_at,
        ended_at,
        (now if ended_at is None else ended_at) - handle._started_at,
    )
