"""Helpers for testing task bodies: the ``task_manager`` pytest fixture and :func:`run_task`.

Installing trio_tasks registers the fixture with pytest (a ``pytest11`` entry
point), so with pytest-trio a test only has to ask for it::

    async def test_render(task_manager):
        await task_manager.start("render", "R1", "chat", plugin, scene="intro")
        ...

Tasks that wait (``trio.sleep``, ``handle.wait(key, timeout=3600)``) finish
in microseconds when the test runs on a mock clock that jumps ahead whenever
every task is blocked: ask pytest-trio for its ``autojump_clock`` fixture, or
pass ``clock=trio.testing.MockClock(autojump_threshold=0)`` to ``trio.run``::

    async def test_approval_times_out(autojump_clock):
        ctls = await run_task(plugin, "approval_task", prompt="Deploy?")
        assert ctls[-1] == TaskCtl.fail("Approval timeout or rejected")
"""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator
from typing import Any

import trio

from ._checks import check_str
from ._ctl import TaskCtl
from ._errors import NoTaskManager
from ._facade import current_manager
from ._handle import AgentNotice
from ._ki import protect
from ._manager import TaskManager, TerminalCallback, open_task_manager
from ._plugin import Plugin

__all__ = ["run_task"]  # and task_manager, where pytest is installed

_ids = itertools.count(1)
_LEFT = TaskCtl.cancel("Cancelled: the caller of run_task stopped waiting for it")


async def run_task(
    plugin: Plugin,
    task_type: str,
    *args: Any,
    task_id: str | None = None,
    chat_key: str = "test-chat",
    task_timeout: float | None = None,
    on_terminal: TerminalCallback | None = None,
    **kwargs: Any,
) -> list[TaskCtl]:
    """Run one task to its end and return every TaskCtl it reported, the terminal one last.

    It runs in the current task manager (inside ``open_task_manager()`` or
    with the ``task_manager`` fixture), or in a manager of its own when none
    is open (or the current one has closed). ``args`` and ``kwargs`` go to
    the body, as with ``start``; ``task_id`` (default: a fresh
    ``"run_task-N"``), ``chat_key``, ``task_timeout`` and ``on_terminal``
    go to ``start``. In a manager of its own, ``run_task`` returns once
    an async ``on_terminal`` has finished too, and the task's agent notices
    are dropped, as nothing could read them (to test them, open a manager,
    or use the fixture, and read ``agent_notices()``). Nothing is dropped, and the list holds the reports the
    manager makes for the task too (queued behind a limit, a retry's
    back-off). As if the body were awaited, a cancel of the caller (a
    ``trio.fail_after`` around the call) cancels the task: it has ended
    CANCEL, its ``on_terminal`` run, when the cancel goes on from
    ``run_task``::

        ctls = await run_task(plugin, "my_task", prompt="Generate report")
        assert [ctl.progress for ctl in ctls[:-1]] == [10, 50]
        assert ctls[-1].signal is TaskSignal.SUCCESS

    With a mock clock (``autojump_clock``) a task that waits an hour ends
    at once, its wait timed out. To resume the wait instead, give the task
    an id and notify it from beside, in an open manager (the fixture's)::

        async def approve_soon():
            await trio.sleep(1)  # by then the task waits
            task.get_handle("approval", "A1").notify("approval", True)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(approve_soon)
            ctls = await run_task(plugin, "approval", task_id="A1", prompt="Deploy?")
    """
    try:
        manager = current_manager()
    except NoTaskManager:
        manager = None
    if manager is None or manager.closed:
        async with open_task_manager(on_agent_notice=_drop_notice) as own:  # (its notices have no reader)
            own._grace_period = math.inf  # its close waits for an async on_terminal (the task has ended by then)
            return await _run(own, plugin, task_type, args, task_id, chat_key, task_timeout, on_terminal, kwargs)
    return await _run(manager, plugin, task_type, args, task_id, chat_key, task_timeout, on_terminal, kwargs)


async def _run(
    manager: TaskManager,
    plugin: Plugin,
    task_type: str,
    args: tuple[Any, ...],
    task_id: str | None,
    chat_key: str,
    task_timeout: float | None,
    on_terminal: TerminalCallback | None,
    kwargs: dict[str, Any],
) -> list[TaskCtl]:
    task_id = f"run_task-{next(_ids)}" if task_id is None else task_id
    check_str("task_type", task_type)  # (as start would: watch() below would name itself instead)
    check_str("task_id", task_id)
    async with manager.watch(task_type, task_id, buffer=None) as events:
        handle = await manager.start(
            task_type, task_id, chat_key, plugin, *args, on_terminal=on_terminal, task_timeout=task_timeout, **kwargs
        )
        try:
            return [event.ctl async for event in events]
        finally:
            if handle._ended_at is None:  # the caller was cancelled (a timeout around run_task): so is the task
                manager._cancel_now(handle, _LEFT)
                with trio.CancelScope(shield=True):  # as an awaited body would, it ends before run_task does
                    async for _ in events:
                        pass


def _drop_notice(notice: AgentNotice) -> None:
    """The agent notices of a task in run_task's own manager: nothing could read them."""


try:
    import pytest
except ImportError:  # pragma: no cover - only the fixture needs pytest
    pass
else:
    __all__ += ["task_manager"]

    @pytest.fixture
    @trio.lowlevel.enable_ki_protection  # (protect() below does not see through pytest's wrapper)
    async def task_manager() -> AsyncIterator[TaskManager]:
        """A task manager open for the length of one test (pytest-trio).

        Inside the test, the ``trio_tasks.task`` object refers to it too. It
        closes after the test, cancelling whatever still runs::

            async def test_render_starts(task_manager):
                await task.start("render", "R1", "chat-1", plugin, scene="intro")
                assert task_manager.is_running("render", "R1")
        """
        async with open_task_manager() as manager:
            yield manager


protect(__name__)
