"""Graceful cancel: ``cancel(..., grace=)``, ``stop_all(grace=)`` and the manager's ``grace_period``.

First the task is asked to stop (``handle.is_cancelled`` turns True, ``handle.cancel_requested()`` returns), so a
body can finish its step and yield its own terminal; when the grace ends its scope is cancelled.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from recording import Ended, Endings

from trio_tasks import AsyncTaskHandle, Plugin, TaskCtl, TaskManager, open_task_manager

plugin = Plugin(name="Graceful", module_name="graceful")

BY_CANCEL = TaskCtl.cancel("Cancelled by cancel()")
BY_STOP_ALL = TaskCtl.cancel("Cancelled by stop_all()")
BY_CLOSE = TaskCtl.cancel("Cancelled: the task manager closed")


@plugin.mount_async_task("cooperative")
async def cooperative(handle: AsyncTaskHandle, wind_down: float) -> AsyncIterator[TaskCtl]:
    """Works until asked to stop, then takes ``wind_down`` seconds to finish its step and yields its own CANCEL."""
    yield TaskCtl.report_progress("working", 10)
    await handle.cancel_requested()
    assert handle.is_cancelled
    await trio.sleep(wind_down)
    yield TaskCtl.cancel("Stopped cleanly")


@plugin.mount_async_task("stubborn")
async def stubborn(handle: AsyncTaskHandle, finally_at: list[float]) -> AsyncIterator[TaskCtl]:
    """Ignores every request to stop; records when its finally ran."""
    try:
        yield TaskCtl.report_progress("working", 10)
        await trio.sleep_forever()
    finally:
        finally_at.append(trio.current_time())


@plugin.mount_async_task("polling")
async def polling(handle: AsyncTaskHandle, steps: list[float]) -> AsyncIterator[TaskCtl]:
    """The seed's pattern: a step a second, checking ``handle.is_cancelled`` between steps."""
    for n in range(100):
        yield TaskCtl.report_progress(f"step {n}", n)
        await trio.sleep(1)
        steps.append(trio.current_time())
        if handle.is_cancelled:
            yield TaskCtl.cancel("Task cancelled")
            return
    yield TaskCtl.success("all steps done")


@plugin.mount_async_task("finishes", max_concurrent=1)
async def finishes(handle: AsyncTaskHandle, began: list[str]) -> AsyncIterator[TaskCtl]:
    """One at a time; when asked to stop it still finishes its work a second later and succeeds."""
    began.append(handle.task_id)
    await handle.cancel_requested()
    await trio.sleep(1)
    yield TaskCtl.success("finished anyway")


@plugin.mount_async_task("until_go")
async def until_go(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
    yield TaskCtl.report_progress("waiting", 10)
    await handle.wait("go")
    yield TaskCtl.success("went")


@attrs.define
class Tasks:
    """Starts tasks on one manager and records each terminal callback with its virtual time."""

    manager: TaskManager
    endings: Endings = attrs.Factory(Endings)

    async def start(self, task_type: str, task_id: str, *args: Any, chat_key: str = "chat") -> AsyncTaskHandle:
        on_terminal = self.endings.callback(task_id)
        return await self.manager.start(task_type, task_id, chat_key, plugin, *args, on_terminal=on_terminal)

    def ended(self, task_id: str) -> Ended:
        """The one ending of ``task_id``; fails unless its callback fired exactly once."""
        return self.endings.only(task_id)


# -- cancel(grace=) ---------------------------------------------------------------------------------------


async def test_a_body_that_reacts_within_the_grace_yields_its_own_cancel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_task_manager() as manager:
        tasks = Tasks(manager)
        handle = await tasks.start("cooperative", "C", 2.0)
        await trio.sleep(5)
        assert not handle.is_cancelled
        t0 = trio.current_time()
        assert await manager.cancel("cooperative", "C", grace=10) is True
        assert trio.current_time() == t0 + 2, "cancel returns once the task ended, before the grace is over"
        assert len(tasks.endings.by_task["C"]) == 1, "and after its callback ran"
        assert not manager.is_running("cooperative", "C")
        assert manager.get_state("cooperative", "C") == TaskCtl.cancel("Stopped cleanly")
    assert tasks.ended("C") == Ended(TaskCtl.cancel("Stopped cleanly"), t0 + 2)


async def test_a_body_may_end_any_way_within_the_grace(autojump_clock: trio.testing.MockClock) -> None:
    began: list[str] = []
    async with open_task_manager() as manager:
        tasks = Tasks(manager)
        await tasks.start("finishes", "F", began)
        t0 = trio.current_time()
        assert await manager.cancel("finishes", "F", grace=5) is True
        assert trio.current_time() == t0 + 1
    assert tasks.ended("F").ctl == TaskCtl.success("finished anyway")


async def test_a_body_that_ignores_the_request_is_cancelled_when_the_grace_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    finally_at: list[float] = []
    async with open_task_manager() as manager:
        tasks = Tasks(manager)
        handle = await tasks.start("stubborn", "S", finally_at)
        t0 = trio.current_time()
        assert await manager.cancel("stubborn", "S", grace=7.5) is True
        assert trio.current_time() == t0 + 7.5
        assert handle.is_cancelled
    assert tasks.ended("S") == Ended(BY_CANCEL, t0 + 7.5)
    assert finally_at == [t0 + 7.5]


async def test_the_seed_polling_pattern_stops_at_the_next_step(autojump_clock: trio.testing.MockClock) -> None:
    steps: list[float] = []
    async with open_task_manager() as manager:
        tasks = Tasks(manager)
        t0 = trio.current_time()
        await tasks.start("polling", "P", steps)
        await trio.sleep(2.5)
        assert manager.get_state("polling", "P") == TaskCtl.report_progress("step 2", 2)
        assert await manager.cancel("polling", "P", grace=30) is True
        assert trio.current_time() == t0 + 3
    assert tasks.ended("P") == Ended(TaskCtl.cancel("Task cancelled"), t0 + 3)
    assert steps == [t0 + 1, t0 + 2, t0 + 3]


@pytest.mark.parametrize("grace", [None, 0, 0.0])
async def test_no_grace_cancels_at_once(autojump_clock: trio.testing.MockClock, grace: float | None) -> None:
    async with open_task_manager() as manager:
        tasks = Tasks(manager)
        await tasks.start("cooperative", "C", 2.0)
        t0 = trio.current_time()
        assert await manager.cancel("cooperative", "C", grace=grace) is True
    assert tasks.ended("C") == Ended(BY_CANCEL, t0)


@pytest.mark.parametrize(
    ("grace", "error"),
    [(-1, ValueError), (math.nan, ValueError), (math.inf, ValueError), ("5", TypeError), (True, TypeError)],
)
async def test_cancel_refuses_a_bad_grace(grace: object, error: type[Exception]) -> None:
    async with open_task_manager() as manager:
        tasks = Tasks(manager)
        await tasks.start("stubborn", "S", [])
        with pytest.raises(error, match="grace") as caught:
            await manager.cancel("stubborn", "S", grace=grace)  # type: ignore[arg-type]
        assert repr(grace) in str(caught.value)
        assert manager.is_running("stubborn", "S")
        handle = manager.get_handle("stubborn", "S")
        assert handle is not None
        assert not handle.is_cancelled


# -- stop_all(grace=) ----------------------------------------------------------------------------------------


StopAll = Callable[[TaskManager, float], Awaitable[int]]


async def stop_everything(manager: TaskManager, grace: float) -> int:
    return await manager.stop_all(grace=grace)


async def stop_this_chat(manager: TaskManager, grace: float) -> int:
    return await manager.stop_all(chat_key="chat", grace=grace)


@pytest.mark.parametrize("stop_all", [stop_everything, stop_this_chat])
async def test_stop_all_with_grace_over_cooperative_and_stubborn_tasks(
    autojump_clock: trio.testing.MockClock, stop_all: StopAll
) -> None:
    finally_at: list[float] = []
    async with open_task_manager() as manager:
        tasks = Tasks(manager)
        await tasks.start("cooperative", "C1", 1.0)
        await tasks.start("cooperative", "C2", 3.0)
        await tasks.start("stubborn", "S1", finally_at)
        await tasks.start("stubborn", "S2", finally_at)
        t0 = trio.current_time()
        assert await stop_all(manager, 5) == 4
        assert trio.current_time() == t0 + 5
        assert manager.get_running_tasks() == []
    assert tasks.ended("C1") == Ended(TaskCtl.cancel("Stopped cleanly"), t0 + 1)
    assert tasks.ended("C2") == Ended(TaskCtl.cancel("Stopped cleanly"), t0 + 3)
    assert tasks.ended("S1") == Ended(BY_STOP_ALL, t0 + 5)
    assert tasks.ended("S2") == Ended(BY_STOP_ALL, t0 + 5)
    assert finally_at == [t0 + 5, t0 + 5]


@pytest.mark.parametrize("stop_all", [stop_everything, stop_this_chat])
async def test_stop_all_returns_once_every_task_ended_within_the_grace(
    autojump_clock: trio.testing.MockClock, stop_all: StopAll
) -> None:
    async with open_task_manager() as manager:
        tasks = Tasks(manager)
        await tasks.start("cooperative", "C1", 1.0)
        await tasks.start("cooperative", "C2", 2.0)
        t0 = trio.current_time()
        assert await stop_all(manager, 60) == 2
        assert trio.current_time() == t0 + 2, "stop_all waits for the tasks, not for the whole grace"
    assert tasks.ended("C2") == Ended(TaskCtl.cancel("Stopped cleanly"), t0 + 2)


# -- the manager's grace_period ------------------------------------------------------------------------------


async def test_grace_period_asks_tasks_to_stop_then_cancels_the_rest(autojump_clock: trio.testing.MockClock) -> None:
    finally_at: list[float] = []
    steps: list[float] = []
    async with open_task_manager(grace_period=4) as manager:
        tasks = Tasks(manager)
        await tasks.start("cooperative", "C", 2.0)
        await tasks.start("polling", "P", steps)
        await tasks.start("stubborn", "S", finally_at)
        await trio.sleep(0.5)
        closing_at = trio.current_time()
    assert trio.current_time() == closing_at + 4
    assert tasks.ended("C") == Ended(TaskCtl.cancel("Stopped cleanly"), closing_at + 2)
    assert tasks.ended("P") == Ended(TaskCtl.cancel("Task cancelled"), closing_at + 0.5)
    assert tasks.ended("S") == Ended(BY_CLOSE, closing_at + 4)
    assert finally_at == [closing_at + 4]


async def test_grace_period_ends_early_when_every_task_stopped(autojump_clock: trio.testing.MockClock) -> None:
    async with open_task_manager(grace_period=60) as manager:
        tasks = Tasks(manager)
        await tasks.start("cooperative", "C", 2.0)
        closing_at = trio.current_time()
    assert trio.current_time() == closing_at + 2
    assert tasks.ended("C").ctl == TaskCtl.cancel("Stopped cleanly")


# -- a queued task has no step to finish --------------------------------------------------------------------


async def test_a_queued_task_is_cancelled_at_once_despite_grace(autojump_clock: trio.testing.MockClock) -> None:
    began: list[str] = []
    async with open_task_manager() as manager:
        tasks = Tasks(manager)
        await tasks.start("finishes", "running", began)
        await tasks.start("finishes", "queued", began)
        t0 = trio.current_time()
        assert await manager.cancel("finishes", "queued", grace=30) is True
        assert trio.current_time() == t0
        assert manager.is_running("finishes", "running")
    assert tasks.ended("queued") == Ended(BY_CANCEL, t0)
    assert began == ["running"]


@pytest.mark.parametrize("stop_all", [stop_everything, stop_this_chat])
async def test_stop_all_cancels_queued_tasks_at_once_and_gives_running_ones_the_grace(
    autojump_clock: trio.testing.MockClock, stop_all: StopAll
) -> None:
    began: list[str] = []
    async with open_task_manager() as manager:
        tasks = Tasks(manager)
        for task_id in ("A", "B", "C"):
            await tasks.start("finishes", task_id, began)
        t0 = trio.current_time()
        assert await stop_all(manager, 30) == 3
        assert trio.current_time() == t0 + 1
    assert tasks.ended("A") == Ended(TaskCtl.success("finished anyway"), t0 + 1)
    assert tasks.ended("B") == Ended(BY_STOP_ALL, t0)
    assert tasks.ended("C") == Ended(BY_STOP_ALL, t0)
    assert began == ["A"], "the queued tasks never began, not even when A's slot freed"


async def test_grace_period_cancels_queued_tasks_at_once(autojump_clock: trio.testing.MockClock) -> None:
    began: list[str] = []
    async with open_task_manager(grace_period=30) as manager:
        tasks = Tasks(manager)
        await tasks.start("finishes", "A", began)
        await tasks.start("finishes", "B", began)
        closing_at = trio.current_time()
    assert tasks.ended("A") == Ended(TaskCtl.success("finished anyway"), closing_at + 1)
    assert tasks.ended("B") == Ended(BY_CLOSE, closing_at)
    assert began == ["A"]


# -- cancel_requested() ------------------------------------------------------------------------------------

REQUESTS: dict[str, Callable[[TaskManager, AsyncTaskHandle], Awaitable[object]]] = {
    "cancel": lambda manager, handle: manager.cancel("until_go", "U"),
    "cancel with grace": lambda manager, handle: manager.cancel("until_go", "U", grace=5),
    "stop_all": lambda manager, handle: manager.stop_all(),
    "stop_all with grace": lambda manager, handle: manager.stop_all(grace=5),
    "stop_all of its type": lambda manager, handle: manager.stop_all(task_type="until_go"),
}


@pytest.mark.parametrize("how", [*REQUESTS, "close", "close with grace", "its own end"])
async def test_cancel_requested_returns_on_every_request_and_at_the_tasks_end(
    autojump_clock: trio.testing.MockClock, how: str
) -> None:
    returned: list[tuple[float, bool]] = []

    async def waiter(handle: AsyncTaskHandle) -> None:  # outside the task: nothing cancels it
        await handle.cancel_requested()
        returned.append((trio.current_time(), handle.is_cancelled))

    grace_period = 5 if how == "close with grace" else 0
    async with trio.open_nursery() as outside, open_task_manager(grace_period=grace_period) as manager:
        handle = await manager.start("until_go", "U", "chat", plugin)
        outside.start_soon(waiter, handle)
        await trio.sleep(1)
        if how in REQUESTS:
            outside.start_soon(REQUESTS[how], manager, handle)
        elif how == "its own end":
            handle.notify("go")
        await trio.sleep(10)  # (the block ends here, for "close")
    assert returned == [(1 if how != "close" and how != "close with grace" else 11, how != "its own end")]


async def test_cancel_requested_on_an_ended_task_returns_at_once() -> None:
    async with open_task_manager() as manager:
        handle = await manager.start("until_go", "U", "chat", plugin)
        handle.notify("go")
        await trio.testing.wait_all_tasks_blocked()
        assert not manager.is_running("until_go", "U")
        with trio.fail_after(1):
            await handle.cancel_requested()
        assert not handle.is_cancelled
        assert handle.cancel_all() == 0
        assert not handle.is_cancelled, "an ended task keeps what it ended with"


@pytest.mark.parametrize("how", ["cancel", "close"])
async def test_a_task_stopped_just_as_it_ends_on_its_own_stays_is_cancelled(
    autojump_clock: trio.testing.MockClock, how: str
) -> None:
    ends: list[TaskCtl] = []
    async with open_task_manager() as manager:
        handle = await manager.start("until_go", "U", "chat", plugin, on_terminal=ends.append)
        await trio.sleep(1)
        handle.notify("go")  # the body resumes in the next batch...
        if how == "cancel":
            await manager.cancel("until_go", "U")  # ... after its scope is cancelled
        # "close": ... after the block's end has stopped its generation
    assert ends == [TaskCtl.success("went")], "it finished its step without waiting again"
    assert handle.is_cancelled, "a cancel was requested while it ran: it stays True once it has ended"
