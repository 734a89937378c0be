"""Terminal callbacks, sync and ``async def``.

An async ``on_terminal`` is started once in the manager's own nursery after the task's state is final; its errors
are logged on the ``trio_tasks`` logger and swallowed; the manager's block waits for it up to ``grace_period``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from trio_tasks import AsyncTaskHandle, Plugin, TaskCtl, TaskManager, TaskSignal, open_task_manager

plugin = Plugin(name="Callbacks", module_name="callbacks")


@plugin.mount_async_task("naps")
async def naps(handle: AsyncTaskHandle, seconds: float) -> AsyncIterator[TaskCtl]:
    yield TaskCtl.report_progress("napping", 50)
    await trio.sleep(seconds)
    yield TaskCtl.success("woke", data=seconds)


@attrs.frozen
class Seen:
    """What a callback saw at one moment."""

    at: float
    ctl: TaskCtl
    running: bool
    state: TaskCtl | None


@attrs.define
class AsyncRecorder:
    """An async terminal callback: records what it saw as it began, sleeps ``seconds``, records again.

    ``cancelled_at`` is set if the sleep was cancelled; ``raises`` makes it raise after the sleep.
    """

    manager: TaskManager
    task_id: str
    seconds: float = 0.0
    raises: Exception | None = None
    seen: list[Seen] = attrs.Factory(list)
    finished_at: float | None = None
    cancelled_at: float | None = None

    def look(self, ctl: TaskCtl) -> Seen:
        return Seen(
            trio.current_time(),
            ctl,
            self.manager.is_running("naps", self.task_id),
            self.manager.get_state("naps", self.task_id),
        )

    async def __call__(self, ctl: TaskCtl) -> None:
        self.seen.append(self.look(ctl))
        try:
            await trio.sleep(self.seconds)
        except trio.Cancelled:
            self.cancelled_at = trio.current_time()
            raise
        self.finished_at = trio.current_time()
        if self.raises is not None:
            raise self.raises


async def start(manager: TaskManager, task_id: str, seconds: float, on_terminal: Callable[[TaskCtl], Any]) -> None:
    await manager.start("naps", task_id, "chat", plugin, seconds, on_terminal=on_terminal)


def logged(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "trio_tasks" and r.levelno == level]


async def test_an_async_callback_runs_once_after_the_state_is_final(autojump_clock: trio.testing.MockClock) -> None:
    async with open_task_manager() as manager:
        callback = AsyncRecorder(manager, "T", seconds=5)
        t0 = trio.current_time()
        await start(manager, "T", 2, callback)
        await trio.sleep(10)
    [seen] = callback.seen
    assert seen.ctl == TaskCtl.success("woke", data=2)
    assert seen.at == t0 + 2
    assert seen.running is False
    assert seen.state == seen.ctl
    assert callback.finished_at == t0 + 7, "it was awaited to the end"


async def test_a_coroutine_returned_by_a_plain_callable_is_awaited(autojump_clock: trio.testing.MockClock) -> None:
    async with open_task_manager() as manager:
        callback = AsyncRecorder(manager, "T", seconds=1)
        t0 = trio.current_time()
        await start(manager, "T", 2, lambda ctl: callback(ctl))
        await trio.sleep(10)
    assert len(callback.seen) == 1
    assert callback.finished_at == t0 + 3


ASYNC_STOPS: dict[str, Callable[[TaskManager], Awaitable[object]]] = {
    "cancel": lambda manager: manager.cancel("naps", "T"),
    "cancel with grace": lambda manager: manager.cancel("naps", "T", grace=1),
    "filtered stop_all": lambda manager: manager.stop_all(plugin=plugin),
    "stop_all": lambda manager: manager.stop_all(),
}


@pytest.mark.parametrize("how", list(ASYNC_STOPS))
async def test_cancel_returns_once_the_async_callback_started_not_finished(
    autojump_clock: trio.testing.MockClock, how: str
) -> None:
    for _ in range(20):  # Trio runs the tasks of one batch in a random order: each order must hold
        async with open_task_manager() as manager:
            callback = AsyncRecorder(manager, "T", seconds=5)
            await start(manager, "T", 100, callback)
            t0 = trio.current_time()
            assert await ASYNC_STOPS[how](manager)
            assert len(callback.seen) == 1, "the callback has begun"
            assert callback.finished_at is None, "but not finished"
            await trio.sleep(6)
            assert callback.finished_at == t0 + (6 if how == "cancel with grace" else 5)
        [seen] = callback.seen
        assert seen.ctl.signal is TaskSignal.CANCEL
        assert seen.state == seen.ctl


async def test_a_raising_async_callback_is_logged_and_harms_nobody(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    error = RuntimeError("callback bug")
    async with open_task_manager() as manager:
        broken = AsyncRecorder(manager, "bad", seconds=1, raises=error)
        fine = AsyncRecorder(manager, "good", seconds=1)
        t0 = trio.current_time()
        await start(manager, "bad", 1, broken)
        await start(manager, "good", 5, fine)
        await trio.sleep(3)
        assert broken.finished_at == t0 + 2, "the broken callback has raised by now"
        assert manager.is_running("naps", "good"), "the other task runs on"
        await trio.sleep(5)
        await start(manager, "later", 1, lambda ctl: None)  # the manager still accepts work
    assert fine.seen[0].ctl == TaskCtl.success("woke", data=5)
    assert fine.finished_at == t0 + 6
    [record] = logged(caplog, logging.ERROR)
    assert "on_terminal callback of task naps:bad raised" in record.getMessage()
    assert record.exc_info is not None
    assert record.exc_info[1] is error


async def test_close_waits_for_a_slow_async_callback_within_grace_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_task_manager(grace_period=10) as manager:
        callback = AsyncRecorder(manager, "T", seconds=4)
        await start(manager, "T", 1, callback)
        await trio.sleep(2)
        closing_at = trio.current_time()
    assert callback.finished_at == closing_at + 3
    assert callback.cancelled_at is None
    assert trio.current_time() == closing_at + 3, "the block exits once the callback is done"


async def test_close_cancels_an_async_callback_after_grace_period(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_task_manager(grace_period=5) as manager:
        callback = AsyncRecorder(manager, "T", seconds=100)
        await start(manager, "T", 1, callback)
        await trio.sleep(2)
        closing_at = trio.current_time()
    assert callback.finished_at is None
    assert callback.cancelled_at == closing_at + 5
    assert trio.current_time() == closing_at + 5
    [warning] = logged(caplog, logging.WARNING)
    assert "naps:T" in warning.getMessage()


async def test_without_grace_period_close_cancels_async_callbacks_at_once(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_task_manager() as manager:
        ended = AsyncRecorder(manager, "ended", seconds=100)
        closed = AsyncRecorder(manager, "closed", seconds=100)
        await start(manager, "ended", 1, ended)
        await start(manager, "closed", 100, closed)
        await trio.sleep(2)
        closing_at = trio.current_time()
    assert trio.current_time() == closing_at
    assert ended.cancelled_at == closing_at
    assert [seen.ctl for seen in closed.seen] == [TaskCtl.cancel("Cancelled: the task manager closed")]
    assert closed.finished_at is None
    assert len(logged(caplog, logging.WARNING)) == 2


async def test_a_callback_of_a_task_cancelled_by_the_closing_gets_the_grace_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_task_manager(grace_period=5) as manager:
        callback = AsyncRecorder(manager, "T", seconds=3)
        await start(manager, "T", 100, callback)
        closing_at = trio.current_time()
    [seen] = callback.seen
    assert seen.ctl == TaskCtl.cancel("Cancelled: the task manager closed")
    assert seen.at == closing_at + 5
    assert callback.finished_at is not None, "the callback of a task ended by the closing still ran to its end"


# -- sync callbacks --------------------------------------------------------------------------------------------


async def test_a_sync_callback_runs_once_after_the_state_is_final(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[Seen] = []
    async with open_task_manager() as manager:

        def callback(ctl: TaskCtl) -> None:
            seen.append(Seen(trio.current_time(), ctl, manager.is_running("naps", "T"), manager.get_state("naps", "T")))

        t0 = trio.current_time()
        await start(manager, "T", 2, callback)
        await trio.sleep(3)
    assert seen == [Seen(t0 + 2, TaskCtl.success("woke", data=2), False, TaskCtl.success("woke", data=2))]


@pytest.mark.parametrize("value", [42, "done", [1, 2], TaskCtl.success()])
async def test_a_callback_returning_a_non_awaitable_value_is_fine(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture, value: object
) -> None:
    calls: list[TaskCtl] = []

    def callback(ctl: TaskCtl) -> object:
        calls.append(ctl)
        return value

    async with open_task_manager() as manager:
        await start(manager, "T", 1, callback)
        await trio.sleep(2)
        assert manager.get_state("naps", "T") == TaskCtl.success("woke", data=1)
    assert [ctl.signal for ctl in calls] == [TaskSignal.SUCCESS]
    assert logged(caplog, logging.ERROR) == []
    assert logged(caplog, logging.WARNING) == []


async def test_an_async_generator_function_as_callback_is_logged_as_such(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[TaskCtl] = []

    async def callback(ctl: TaskCtl) -> AsyncIterator[None]:
        ran.append(ctl)  # pragma: no cover - never runs: that is what the log says
        yield

    async with open_task_manager() as manager:
        await start(manager, "T", 1, callback)
        await trio.sleep(2)
        assert manager.get_state("naps", "T") == TaskCtl.success("woke", data=1)
    assert ran == []
    [record] = logged(caplog, logging.ERROR)
    assert record.getMessage().startswith("on_terminal callback returned an async generator on task naps:T, so none")


@pytest.mark.parametrize("grace", [1, 5])
async def test_a_cancel_around_the_manager_while_its_callbacks_have_their_grace_cuts_them_and_goes_on(
    autojump_clock: trio.testing.MockClock, grace: float
) -> None:
    """The block has ended and the manager waits for a slow async callback: the cancel cuts it off at once and
    leaves the manager as the one Cancelled, for the scope that was cancelled."""
    left: list[BaseException] = []
    with trio.move_on_after(0.5) as outer:
        try:
            async with open_task_manager(grace_period=grace) as manager:
                recorder = AsyncRecorder(manager, "N", seconds=10)
                await start(manager, "N", 0, recorder)
        except BaseException as exc:
            left.append(exc)
            raise
    assert outer.cancelled_caught
    assert [type(exc) for exc in left] == [trio.Cancelled]
    assert recorder.cancelled_at == 0.5


async def with_a_nursery(ctl: TaskCtl) -> None:
    """An async callback that sleeps in a nursery of its own."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, 10)
        await trio.sleep(10)


@pytest.mark.parametrize("nursery", [False, True], ids=["plain", "with a nursery"])
async def test_a_cancel_around_the_manager_during_async_callbacks_leaves_it_as_one_cancelled(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture, nursery: bool
) -> None:
    """Not as a group of each callback's Cancelled: the manager's block propagates what it meets unchanged."""
    left: list[BaseException] = []
    with trio.move_on_after(1) as outer:
        try:
            async with open_task_manager() as manager:
                slow = [AsyncRecorder(manager, f"N{n}", seconds=10) for n in range(2)]
                for n, recorder in enumerate(slow):
                    await start(manager, f"N{n}", 0, with_a_nursery if nursery else recorder)
                await trio.sleep_forever()
        except BaseException as exc:
            left.append(exc)
            raise
    assert outer.cancelled_caught
    assert [type(exc) for exc in left] == [trio.Cancelled]
    assert len([r for r in logged(caplog, logging.WARNING) if "was cancelled" in r.getMessage()]) == 2
    if not nursery:
        assert [recorder.cancelled_at for recorder in slow] == [1, 1]
