"""The lifecycle contract of design.md: one test per row of its table, plus the ordering rules.

Every test checks the terminal signal, that the terminal callback fired exactly
once, and the order at the end of a task: the body's generator is closed, the
task is no longer running, ``get_state`` shows the terminal, then the callback.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest
import trio
import trio.testing

import trio_tasks._runner
from trio_tasks import (
    AsyncTaskHandle,
    ManagerClosed,
    Plugin,
    RetryPolicy,
    TaskCtl,
    TaskManager,
    TaskSignal,
    open_task_manager,
    task,
)

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup

plugin = Plugin(name="Lifecycle", module_name="lifecycle")


@attrs.define
class Ending:
    """What a terminal callback saw when it ran."""

    ctl: TaskCtl
    running: bool
    state: TaskCtl | None
    handle: AsyncTaskHandle | None
    log_before: list[str]


@attrs.define
class Recorder:
    """A terminal callback that records what it saw, and a shared event log."""

    manager: TaskManager
    task_type: str
    task_id: str
    log: list[str] = attrs.Factory(list)
    endings: list[Ending] = attrs.Factory(list)

    def __call__(self, ctl: TaskCtl) -> None:
        self.endings.append(
            Ending(
                ctl,
                self.manager.is_running(self.task_type, self.task_id),
                self.manager.get_state(self.task_type, self.task_id),
                self.manager.get_handle(self.task_type, self.task_id),
                list(self.log),
            )
        )
        self.log.append("callback")

    def only(self) -> Ending:
        """The one ending; fails unless the callback fired exactly once, in order."""
        assert len(self.endings) == 1, self.endings
        ending = self.endings[0]
        assert ending.running is False
        assert ending.handle is None
        assert ending.state is ending.ctl
        assert "closed" in ending.log_before, "the body's generator must be closed before the callback"
        return ending


LOGS: dict[str, list[str]] = {}


@plugin.mount_async_task("scripted")
async def scripted(handle: AsyncTaskHandle, steps: list[Any]) -> AsyncIterator[Any]:
    """Runs ``steps``: TaskCtl or other values are yielded, callables are awaited."""
    log = LOGS[handle.task_id]
    try:
        for step in steps:
            if callable(step):
                await step(handle)
            else:
                yield step
    finally:
        log.append("closed")


async def start(manager: TaskManager, task_id: str, *steps: Any) -> Recorder:
    recorder = Recorder(manager, "scripted", task_id)
    LOGS[task_id] = recorder.log
    await manager.start("scripted", task_id, "chat", plugin, list(steps), on_terminal=recorder)
    return recorder


async def park(handle: AsyncTaskHandle) -> None:
    await trio.sleep_forever()


def raising(exc: BaseException) -> Callable[[AsyncTaskHandle], Any]:
    async def step(handle: AsyncTaskHandle) -> None:
        raise exc

    return step


# -- row 1: the body yields a terminal TaskCtl ---------------------------------------


@pytest.mark.parametrize(
    "terminal",
    [
        TaskCtl.success("built", data={"url": "u"}),
        TaskCtl.fail("broke", error=ValueError("x")),
        TaskCtl.cancel("gave up"),
    ],
)
async def test_yielded_terminal_is_the_outcome(terminal: TaskCtl) -> None:
    async with open_task_manager() as manager:
        rec = await start(manager, "T", TaskCtl.report_progress("working", 50), terminal, TaskCtl.success("never"))
    assert rec.only().ctl is terminal


# -- row 2: the body returns without a terminal ------------------------------------------


async def test_return_without_terminal_is_success() -> None:
    async with open_task_manager() as manager:
        rec = await start(manager, "T", TaskCtl.report_progress("working", 50))
    ending = rec.only()
    assert ending.ctl.signal is TaskSignal.SUCCESS
    assert ending.ctl.message == "Done"


@plugin.mount_async_task("coroutine")
async def coroutine_body(handle: AsyncTaskHandle, result: Any) -> Any:
    await trio.sleep(1)
    if isinstance(result, BaseException):
        raise result
    return result


@pytest.mark.parametrize(
    ("result", "signal", "data"),
    [
        (None, TaskSignal.SUCCESS, None),
        ({"rows": 3}, TaskSignal.SUCCESS, {"rows": 3}),
        (TaskCtl.fail("bad data"), TaskSignal.FAIL, None),
        (ValueError("no rows"), TaskSignal.FAIL, "exception"),
    ],
)
async def test_coroutine_body_return_value(
    autojump_clock: trio.testing.MockClock, result: Any, signal: TaskSignal, data: Any
) -> None:
    endings: list[TaskCtl] = []
    async with open_task_manager() as manager:
        await manager.start("coroutine", "C", "chat", plugin, result, on_terminal=endings.append)
        await trio.sleep(2)
    [ctl] = endings
    assert ctl.signal is signal
    assert ctl.data is result if data == "exception" else ctl.data == data


# -- row 3: the body raises an Exception ----------------------------------------------------


async def test_exception_is_fail_with_the_exception_as_data(caplog: pytest.LogCaptureFixture) -> None:
    error = ValueError("disk full")
    async with open_task_manager() as manager:
        rec = await start(manager, "T", TaskCtl.report_progress("writing", 10), raising(error))
    ending = rec.only()
    assert ending.ctl.signal is TaskSignal.FAIL
    assert ending.ctl.data is error
    assert ending.ctl.message == "disk full"
    [record] = [r for r in caplog.records if r.name == "trio_tasks"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.exc_info[1] is error


async def test_exception_without_text_is_named_by_its_type() -> None:
    async with open_task_manager() as manager:
        rec = await start(manager, "T", raising(LookupError()))
    assert rec.only().ctl.message == "LookupError"


async def test_exception_group_from_a_nursery_in_the_body_is_fail() -> None:
    async def crash_in_nursery(handle: AsyncTaskHandle) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            raise KeyError("lost")

    async with open_task_manager() as manager:
        rec = await start(manager, "T", crash_in_nursery)
    ctl = rec.only().ctl
    assert ctl.signal is TaskSignal.FAIL
    assert isinstance(ctl.data, ExceptionGroup)
    assert ctl.data.subgroup(KeyError) is not None
    assert ctl.message == "'lost'", "named by its one error, not 'Exceptions from Trio nursery'"


async def test_a_group_of_several_errors_is_named_as_the_group() -> None:
    async def two_crashes(handle: AsyncTaskHandle) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(raising(KeyError("lost")), handle)
            nursery.start_soon(raising(ValueError("bad")), handle)

    async with open_task_manager() as manager:
        rec = await start(manager, "T", two_crashes)
    ctl = rec.only().ctl
    assert ctl.signal is TaskSignal.FAIL
    assert ctl.message == "Exceptions from Trio nursery (2 sub-exceptions)"


# -- row 4: the body yields something that is not a TaskCtl ---------------------------------


@pytest.mark.parametrize("item", [42, "progress", None, {"signal": "success"}])
async def test_non_taskctl_yield_is_fail_saying_what(item: Any) -> None:
    async with open_task_manager() as manager:
        rec = await start(manager, "T", item, TaskCtl.success("never"))
    ctl = rec.only().ctl
    assert ctl.signal is TaskSignal.FAIL
    assert repr(item) in ctl.message
    assert "not a TaskCtl" in ctl.message
    assert isinstance(ctl.data, TypeError)


# -- row 5: cancel or stop_all cancels the task's scope ---------------------------------------


async def test_cancel_ends_cancel_and_returns_after_the_callback() -> None:
    async with open_task_manager() as manager:
        rec = await start(manager, "T", TaskCtl.report_progress("working", 10), park)
        await trio.testing.wait_all_tasks_blocked()
        assert await manager.cancel("scripted", "T") is True
        assert rec.log == ["closed", "callback"], "cancel returns only after the callback ran"
        assert await manager.cancel("scripted", "T") is False
    assert rec.only().ctl.signal is TaskSignal.CANCEL


async def test_stop_all_cancels_every_task_with_one_callback_each() -> None:
    async with open_task_manager() as manager:
        recs = [await start(manager, f"T{i}", park) for i in range(5)]
        assert await manager.stop_all() == 5
        assert all(rec.log == ["closed", "callback"] for rec in recs), "stop_all returns after every callback"
        assert manager.get_running_tasks() == []
        assert await manager.stop_all() == 0
        after = await start(manager, "after", TaskCtl.success("later"))
    assert [rec.only().ctl.signal for rec in recs] == [TaskSignal.CANCEL] * 5
    assert after.only().ctl.message == "later", "tasks started after stop_all run normally"


async def swallows_the_cancel(handle: AsyncTaskHandle) -> None:
    try:
        await trio.sleep_forever()
    except trio.Cancelled:  # what a stray `except BaseException:` does
        LOGS[handle.task_id].append("swallowed")


@pytest.mark.parametrize("how", ["cancel", "stop_all", "task_timeout"])
@pytest.mark.parametrize("then", [TaskCtl.success("finished anyway"), None], ids=["yields_success", "returns"])
async def test_a_body_that_swallows_the_cancel_and_ends_ends_as_it_says(
    how: str, then: TaskCtl | None, autojump_clock: trio.testing.MockClock
) -> None:
    """As in Trio, a Cancelled the body swallows is gone: it ends with its own terminal, or SUCCESS on return
    (docs/explanation/lifecycle.rst). The cancel still returns only once it has ended."""
    async with open_task_manager() as manager:
        recorder = Recorder(manager, "scripted", "T")
        LOGS["T"] = recorder.log
        steps = [swallows_the_cancel] if then is None else [swallows_the_cancel, then]
        timeout = 5 if how == "task_timeout" else None
        await manager.start("scripted", "T", "chat", plugin, steps, on_terminal=recorder, task_timeout=timeout)
        if how == "cancel":
            assert await manager.cancel("scripted", "T") is True
        elif how == "stop_all":
            assert await manager.stop_all() == 1
        else:
            await trio.sleep(6)
        assert recorder.log == ["swallowed", "closed", "callback"]
    ctl = recorder.only().ctl
    assert (ctl.signal, ctl.message) == (TaskSignal.SUCCESS, "finished anyway" if then else "Done")


async def test_cancel_during_cleanup_after_a_terminal_keeps_the_terminal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ends: list[TaskCtl] = []

    @plugin.mount_async_task("slow_cleanup")
    async def slow_cleanup(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
        try:
            yield TaskCtl.success("finished")
        finally:
            await trio.sleep(10)  # cleanup that a cancel interrupts

    async with open_task_manager() as manager:
        await manager.start("slow_cleanup", "S", "chat", plugin, on_terminal=ends.append)
        await trio.sleep(1)
        assert await manager.cancel("slow_cleanup", "S") is True
    assert [ctl.message for ctl in ends] == ["finished"]


@pytest.mark.parametrize("child", [False, True], ids=["empty", "with a child"])
async def test_a_terminal_yielded_inside_the_bodys_own_nursery_stands(
    autojump_clock: trio.testing.MockClock, child: bool
) -> None:
    ends: list[TaskCtl] = []
    children_closed: list[bool] = []

    async def sleeper() -> None:
        try:
            await trio.sleep_forever()
        finally:
            children_closed.append(True)

    own = Plugin(name="Nursery", module_name="nursery")  # one per parameter: a type is mounted once

    @own.mount_async_task("in_a_nursery")
    async def in_a_nursery(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
        async with trio.open_nursery() as nursery:
            if child:
                nursery.start_soon(sleeper)
            yield TaskCtl.success("from inside")

    async with open_task_manager() as manager:
        bystander = await start(manager, "bystander", park)
        await manager.start("in_a_nursery", "N", "chat", own, on_terminal=ends.append)
        await trio.sleep(1)
        assert manager.get_running_tasks() == ["scripted:bystander"], "the bystander runs on"
    assert ends == [TaskCtl.success("from inside")]
    assert children_closed == ([True] if child else [])
    assert bystander.only().ctl == TaskCtl.cancel("Cancelled: the task manager closed")


@pytest.mark.parametrize("in_a_nursery", [False, True], ids=["bare", "in a nursery"])
async def test_a_body_whose_finally_yields_again_keeps_its_terminal_and_harms_nobody(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture, in_a_nursery: bool
) -> None:
    ends: list[TaskCtl] = []
    cleanup: list[str] = []
    own = Plugin(name="Cleanup", module_name="cleanup")  # one per parameter: a type is mounted once

    @own.mount_async_task("yields_in_finally")
    async def yields_in_finally(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
        async with trio.open_nursery() if in_a_nursery else contextlib.nullcontext():
            try:
                yield TaskCtl.success("ok")
            finally:
                yield TaskCtl.report_progress("cleaning up", 99)
                cleanup.append("finished")  # the runner lets the cleanup finish, so its nursery exits

    async with open_task_manager() as manager:
        bystander = await start(manager, "bystander", park)
        await manager.start("yields_in_finally", "Y", "chat", own, on_terminal=ends.append)
        await trio.sleep(1)
        later = await start(manager, "later", TaskCtl.success("later"))
        await trio.sleep(1)
        assert manager.get_running_tasks() == ["scripted:bystander"]
    assert ends == [TaskCtl.success("ok")]
    assert cleanup == ["finished"]
    assert later.only().ctl == TaskCtl.success("later"), "a task started afterwards runs normally"
    assert bystander.only().ctl == TaskCtl.cancel("Cancelled: the task manager closed")
    logged = [r.getMessage() for r in caplog.records if r.name == "trio_tasks"]
    assert logged == ["task yields_in_finally:Y raised while closing, after it had ended; its outcome stands"]


async def test_a_cleanup_that_yields_on_and_on_is_cancelled_and_run_to_its_end(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    ends: list[TaskCtl] = []
    cleanup: list[str] = []
    own = Plugin(name="Cleanup", module_name="cleanup")

    @own.mount_async_task("yields_on")
    async def yields_on(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
        async with trio.open_nursery():
            try:
                yield TaskCtl.success("ok")
            finally:
                for n in range(150):
                    yield TaskCtl.report_progress(f"cleaning {n}", 99)
                cleanup.append("finished")

    async with open_task_manager() as manager:
        bystander = await start(manager, "bystander", park)
        await manager.start("yields_on", "Y", "chat", own, on_terminal=ends.append)
        await trio.sleep(1)
        assert manager.get_running_tasks() == ["scripted:bystander"]
    assert ends == [TaskCtl.success("ok")]
    assert cleanup == ["finished"], "not left suspended in its nursery"
    assert bystander.only().ctl == TaskCtl.cancel("Cancelled: the task manager closed")
    logged = [r.getMessage() for r in caplog.records if r.name == "trio_tasks"]
    assert "task yields_on:Y yields again and again in its cleanup" in logged[0]


class _BadRepr:
    """A yielded value the runner cannot describe: its repr raises. An interrupt goes on from there, and the
    runner fails between two steps; an error the runner would catch, so the test makes its own description fail."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __repr__(self) -> str:
        raise self.error


@pytest.mark.parametrize("error", [ValueError("repr boom"), KeyboardInterrupt()], ids=["ValueError", "interrupt"])
@pytest.mark.parametrize("cleanup", ["quick", "cancelled"])
async def test_a_failure_of_the_runner_between_steps_closes_the_body_in_its_scopes(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch, error: BaseException, cleanup: str
) -> None:
    if isinstance(error, Exception):

        def fails(value: object) -> str:
            raise error

        monkeypatch.setattr(trio_tasks._runner, "safe_repr", fails)
    ends: list[TaskCtl] = []
    closed: list[bool] = []
    own = Plugin(name="BadRepr", module_name="bad_repr")

    @own.mount_async_task("bad_repr", retry=RetryPolicy(attempts=3))  # the runner's failure is not retried
    async def bad_repr(handle: AsyncTaskHandle) -> AsyncIterator[Any]:
        async with trio.open_nursery():
            try:
                yield _BadRepr(error)
            finally:
                closed.append(True)
                if cleanup == "cancelled":
                    await trio.sleep(10)  # cut short by the cancel below: the runner's failure still decides

    async def run() -> None:
        async with open_task_manager() as manager:
            await manager.start("bad_repr", "B", "chat", own, on_terminal=ends.append)
            await trio.sleep(1)
            if cleanup == "cancelled":
                await manager.cancel("bad_repr", "B")

    if isinstance(error, KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):
            await run()
        assert [(ctl.signal, ctl.message) for ctl in ends] == [(TaskSignal.FAIL, "interrupted by KeyboardInterrupt")]
    else:
        await run()
        assert [(ctl.signal, ctl.message, ctl.attempt) for ctl in ends] == [(TaskSignal.FAIL, "repr boom", 1)]
    assert closed == [True]


# -- row 6: WaitCancelled escapes the body -------------------------------------------------


@pytest.mark.parametrize("nurseries", [0, 1, 2])
@pytest.mark.parametrize("how", ["cancel_wait", "cancel_all"])
async def test_wait_cancelled_escaping_is_cancel(how: str, nurseries: int) -> None:
    """Also from a wait in a child of the body's nurseries: the end names the wait."""

    async def wait_approval(handle: AsyncTaskHandle, depth: int = nurseries) -> None:
        if not depth:
            await handle.wait("approval")
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_approval, handle, depth - 1)

    async with open_task_manager() as manager:
        rec = await start(manager, "T", wait_approval, TaskCtl.success("never"))
        await trio.testing.wait_all_tasks_blocked()
        handle = manager.get_handle("scripted", "T")
        assert handle is not None
        if how == "cancel_wait":
            assert handle.cancel_wait("approval") is True
        else:
            assert handle.cancel_all() == 1
        await trio.testing.wait_all_tasks_blocked()
        assert not manager.is_running("scripted", "T")
    ctl = rec.only().ctl
    assert ctl.signal is TaskSignal.CANCEL
    assert ctl.message.startswith("Cancelled: wait "), ctl.message
    assert "approval" in ctl.message


# -- row 7: the manager's block ends with the task still running ---------------------------------


async def test_block_end_cancels_running_tasks_before_exiting() -> None:
    async with open_task_manager() as manager:
        rec = await start(manager, "T", park)
    assert rec.only().ctl.signal is TaskSignal.CANCEL
    assert rec.log == ["closed", "callback"], "the block exits only after the callback"
    assert manager.get_running_tasks() == []
    with pytest.raises(ManagerClosed):
        await start(manager, "late", TaskCtl.success())


async def test_grace_period_lets_tasks_finish_then_cancels_the_rest(autojump_clock: trio.testing.MockClock) -> None:
    async def nap(seconds: float) -> Callable[[AsyncTaskHandle], Any]:
        async def step(handle: AsyncTaskHandle) -> None:
            await trio.sleep(seconds)

        return step

    async with open_task_manager(grace_period=5) as manager:
        quick = await start(manager, "quick", await nap(3), TaskCtl.success("made it"))
        slow = await start(manager, "slow", await nap(60), TaskCtl.success("too late"))
        closing_at = trio.current_time()
    assert trio.current_time() - closing_at == 5
    assert quick.only().ctl.message == "made it"
    assert slow.only().ctl.signal is TaskSignal.CANCEL


async def test_exception_in_the_block_propagates_unwrapped_after_cancelling() -> None:
    recs: list[Recorder] = []
    with pytest.raises(ZeroDivisionError):  # noqa: PT012 - the raise happens inside the manager's block
        async with open_task_manager() as manager:
            recs.append(await start(manager, "T", park))
            await trio.testing.wait_all_tasks_blocked()
            1 / 0  # noqa: B018
    [rec] = recs
    assert rec.only().ctl.signal is TaskSignal.CANCEL


# -- row 8: a scope around the manager is cancelled ---------------------------------------------


async def test_outside_cancellation_cancels_tasks_then_propagates() -> None:
    with trio.CancelScope() as outer:
        async with open_task_manager() as manager:
            rec = await start(manager, "T", park)
            await trio.testing.wait_all_tasks_blocked()
            outer.cancel()
            await trio.sleep_forever()
    assert outer.cancelled_caught, "the Cancelled reached the scope that was cancelled"
    assert rec.only().ctl.signal is TaskSignal.CANCEL


# -- row 9: a BaseException in the body --------------------------------------------------------


def in_a_nursery(step: Callable[[AsyncTaskHandle], Any]) -> Callable[[AsyncTaskHandle], Any]:
    """``step`` run in a child of a nursery of the body, beside a child that sleeps for ever."""

    async def nested(handle: AsyncTaskHandle) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            nursery.start_soon(step, handle)

    return nested


@pytest.mark.parametrize("nursery", [False, True], ids=["in the body", "in a nursery of the body"])
async def test_keyboard_interrupt_in_body_is_fail_then_propagates(nursery: bool) -> None:
    step = raising(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):  # noqa: PT012 - a task's interrupt escapes the manager's block
        async with open_task_manager() as manager:
            bystander = await start(manager, "bystander", park)
            await trio.testing.wait_all_tasks_blocked()
            rec = await start(manager, "T", in_a_nursery(step) if nursery else step)
            await trio.sleep_forever()
    ctl = rec.only().ctl
    assert ctl.signal is TaskSignal.FAIL
    assert ctl.message == "interrupted by KeyboardInterrupt"
    assert isinstance(ctl.data, KeyboardInterrupt)
    assert bystander.only().ctl.signal is TaskSignal.CANCEL


async def test_two_keyboard_interrupts_leave_as_the_first(autojump_clock: trio.testing.MockClock) -> None:
    """A's body raises one; B's cleanup raises a second (another Ctrl-C landing there): not a group of both."""

    async def cleanup_interrupted(handle: AsyncTaskHandle) -> None:
        try:
            await trio.sleep_forever()
        finally:
            raise KeyboardInterrupt("B's cleanup")

    async def run() -> None:
        async with open_task_manager() as manager:
            await start(manager, "B", cleanup_interrupted)
            await trio.sleep(1)
            await start(manager, "A", raising(KeyboardInterrupt("A's body")))
            await trio.sleep(10)

    with pytest.raises(KeyboardInterrupt, match="A's body"):
        await run()


# -- callbacks, history and the `task` facade -------------------------------------------------------


async def test_a_raising_callback_is_logged_and_harms_nobody(caplog: pytest.LogCaptureFixture) -> None:
    def broken(ctl: TaskCtl) -> None:
        raise RuntimeError("callback bug")

    async with open_task_manager() as manager:
        LOGS["bad"] = []
        await manager.start("scripted", "bad", "chat", plugin, [], on_terminal=broken)
        good = await start(manager, "good", park)
        await trio.testing.wait_all_tasks_blocked()
        assert manager.get_state("scripted", "bad") == TaskCtl.success()
        assert manager.is_running("scripted", "good")
    assert good.only().ctl.signal is TaskSignal.CANCEL
    messages = [r.getMessage() for r in caplog.records if r.name == "trio_tasks"]
    assert any("on_terminal callback of task scripted:bad raised" in m for m in messages)


async def test_a_keyboard_interrupt_from_a_callback_propagates_after_the_ending_is_complete() -> None:
    def interrupt(ctl: TaskCtl) -> None:
        raise KeyboardInterrupt

    returned: list[bool] = []
    with pytest.raises(KeyboardInterrupt):  # noqa: PT012 - the callback's interrupt escapes the manager's block
        async with open_task_manager() as manager:
            bystander = await start(manager, "bystander", park)
            LOGS["T"] = []
            await manager.start("scripted", "T", "chat", plugin, [park], on_terminal=interrupt)
            returned.append(await manager.cancel("scripted", "T"))
            await trio.sleep_forever()
    assert returned == [True], "the cancel waiting for the task's end returned"
    assert manager.get_state("scripted", "T") == TaskCtl.cancel("Cancelled by cancel()")
    assert bystander.only().ctl.signal is TaskSignal.CANCEL


async def test_a_keyboard_interrupt_from_a_callback_still_closes_a_body_that_never_began() -> None:
    own = Plugin(name="Queued", module_name="queued")

    @own.mount_async_task("one_at_a_time", max_concurrent=1)
    async def one_at_a_time(handle: AsyncTaskHandle) -> None:
        await trio.sleep_forever()

    def interrupt(ctl: TaskCtl) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # noqa: PT012 - the callback's interrupt escapes the manager's block
        async with open_task_manager() as manager:
            await manager.start("one_at_a_time", "A", "chat", own)
            queued = await manager.start("one_at_a_time", "B", "chat", own, on_terminal=interrupt)
            body = queued._body  # a coroutine that never begins: cancelled while queued
            await manager.cancel("one_at_a_time", "B")
    assert body.cr_frame is None, "closed, so no 'coroutine was never awaited' warning"


async def test_history_is_bounded_and_keeps_the_latest() -> None:
    async with open_task_manager(history_limit=2) as manager:
        for i in range(3):
            await start(manager, f"T{i}", TaskCtl.success(f"done {i}"))
            await trio.testing.wait_all_tasks_blocked()
        assert manager.get_state("scripted", "T0") is None, "the oldest ended task is forgotten"
        assert manager.get_state("scripted", "T1") == TaskCtl.success("done 1")
        assert manager.get_state("scripted", "T2") == TaskCtl.success("done 2")
        # Running a finished id again makes it the newest entry.
        await start(manager, "T1", TaskCtl.success("again"))
        await trio.testing.wait_all_tasks_blocked()
        await start(manager, "T3", TaskCtl.success("done 3"))
        await trio.testing.wait_all_tasks_blocked()
        assert manager.get_state("scripted", "T1") == TaskCtl.success("again")
        assert manager.get_state("scripted", "T2") is None


async def test_zero_history_forgets_ended_tasks() -> None:
    async with open_task_manager(history_limit=0) as manager:
        rec = await start(manager, "T", TaskCtl.success())
        await trio.testing.wait_all_tasks_blocked()
        assert manager.get_state("scripted", "T") is None
    assert rec.endings[0].state is None  # nothing kept, even inside the callback


async def test_state_is_the_latest_progress_while_running() -> None:
    async def checkpoint(handle: AsyncTaskHandle) -> None:
        await trio.sleep_forever()

    async with open_task_manager() as manager:
        await start(manager, "T", TaskCtl.report_progress("one", 10), TaskCtl.report_progress("two", 20), checkpoint)
        await trio.testing.wait_all_tasks_blocked()
        assert manager.get_state("scripted", "T") == TaskCtl.report_progress("two", 20)
        assert manager.get_running_tasks() == ["scripted:T"]


async def test_task_facade_inside_a_body_is_its_manager() -> None:
    seen: list[list[str]] = []

    async def look(handle: AsyncTaskHandle) -> None:
        seen.append(task.get_running_tasks())

    async with open_task_manager() as outer_manager:
        async with open_task_manager() as inner_manager:
            await start(inner_manager, "inner", look)
            await trio.testing.wait_all_tasks_blocked()
        await start(outer_manager, "outer", look)
        await trio.testing.wait_all_tasks_blocked()
    assert seen == [["scripted:inner"], ["scripted:outer"]]


async def test_start_from_a_cancelled_scope_raises_cancelled_and_starts_nothing() -> None:
    """start is a checkpoint: a caller that is cancelled already gets Cancelled, and no task exists."""
    async with open_task_manager() as manager:
        with trio.CancelScope() as scope:
            scope.cancel()
            await start(manager, "T", TaskCtl.success("never"))
        assert scope.cancelled_caught
        assert not manager.is_running("scripted", "T")
        assert manager.get_state("scripted", "T") is None
        assert "T" not in LOGS or LOGS["T"] == [], "the body never began"
        rec = await start(manager, "T", TaskCtl.success("now"))  # the id is free at once
    assert rec.only().ctl == TaskCtl.success("now")


async def test_a_manager_opened_in_a_cancelled_scope_opens_and_its_block_meets_the_cancel() -> None:
    """Trio's own nurseries open in a cancelled scope too; the opening hung (forever, shielded)."""
    ran: list[str] = []
    with trio.CancelScope() as scope:
        scope.cancel()
        async with open_task_manager() as manager:
            ran.append("block")
            await manager.start("scripted", "S", "chat", plugin, [])  # a checkpoint: raises Cancelled
            ran.append("not reached")
    assert scope.cancelled_caught
    assert ran == ["block"]
    assert manager.closed
    assert manager.get_state("scripted", "S") is None, "no task started"


@pytest.mark.parametrize("error", [ValueError("from the block"), KeyboardInterrupt()])
async def test_what_the_block_raises_during_a_cancel_from_outside_propagates(error: BaseException) -> None:
    """The block meets the cancel from outside and raises instead; the close meets that cancel too."""
    ran: list[str] = []

    async def raises_when_cancelled(outer: trio.CancelScope) -> None:
        async with open_task_manager() as manager:
            await manager.start("scripted", "S", "chat", plugin, [("wait", "never")])
            outer.cancel()
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                ran.append("met the cancel")
                raise error from None

    async def in_a_scope() -> None:
        with trio.CancelScope() as outer:  # (it must not catch what the block raised)
            await raises_when_cancelled(outer)

    with pytest.raises(type(error)):
        await in_a_scope()
    assert ran == ["met the cancel"]
