"""Deadlines: ``start(..., task_timeout=seconds)``.

The deadline counts from when the body begins (not while it is queued), covers every retry attempt, and ends a
task still running FAIL with a :class:`TaskTimeout` as ``data``. Bodies record what happened to them in a
:class:`Trace` so the tests can check that their ``finally`` blocks ran, and when.
"""

from __future__ import annotations

import copy
import math
import pickle
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from recording import Ended, recorder, wait_until_idle
from task_scripts import shielded_cleanup

from trio_tasks import (
    AsyncTaskHandle,
    Plugin,
    RetryPolicy,
    TaskCtl,
    TaskError,
    TaskManager,
    TaskSignal,
    TaskTimeout,
    open_task_manager,
)

plugin = Plugin(name="Deadlines", module_name="deadlines")


@attrs.define
class Trace:
    """What a body did, with virtual times."""

    began: list[float] = attrs.Factory(list)
    finally_at: list[float] = attrs.Factory(list)

    def now(self, what: list[float]) -> None:
        what.append(trio.current_time())


@plugin.mount_async_task("waits")
async def waits(handle: AsyncTaskHandle, trace: Trace) -> AsyncIterator[TaskCtl]:
    """Waits for a notification that never comes."""
    trace.now(trace.began)
    try:
        yield TaskCtl.report_progress("waiting", 50)
        await handle.wait("never")
        yield TaskCtl.success("notified")
    finally:
        trace.now(trace.finally_at)


@plugin.mount_async_task("naps")
async def naps(handle: AsyncTaskHandle, trace: Trace, seconds: float) -> AsyncIterator[TaskCtl]:
    trace.now(trace.began)
    try:
        await trio.sleep(seconds)
        yield TaskCtl.success("woke")
    finally:
        trace.now(trace.finally_at)


@plugin.mount_async_task("slow_cleanup")
async def slow_cleanup(handle: AsyncTaskHandle, trace: Trace) -> AsyncIterator[TaskCtl]:
    """Succeeds after 1 second, then cleans up for 10 seconds."""
    trace.now(trace.began)
    await trio.sleep(1)
    try:
        yield TaskCtl.success("finished before the deadline")
    finally:
        try:
            await trio.sleep(10)
        finally:
            trace.now(trace.finally_at)


@plugin.mount_async_task("coroutine")
async def coroutine(handle: AsyncTaskHandle, trace: Trace, seconds: float) -> str:
    trace.now(trace.began)
    try:
        await trio.sleep(seconds)
    finally:
        trace.now(trace.finally_at)
    return "returned"


@plugin.mount_async_task("flaky", retry=RetryPolicy(attempts=5, backoff=1.0, factor=1.0))
async def flaky(handle: AsyncTaskHandle, trace: Trace, seconds: float) -> AsyncIterator[TaskCtl]:
    """Every attempt works for ``seconds``, then raises; 1 second between attempts."""
    trace.now(trace.began)
    try:
        yield TaskCtl.report_progress("trying", 10)
        await trio.sleep(seconds)
        raise ConnectionError("flaky network")
    finally:
        trace.now(trace.finally_at)


@plugin.mount_async_task("long_backoff", retry=RetryPolicy(attempts=3, backoff=10.0))
async def long_backoff(handle: AsyncTaskHandle, trace: Trace) -> AsyncIterator[TaskCtl]:
    trace.now(trace.began)
    yield TaskCtl.report_progress("trying", 10)
    raise ConnectionError("down")


@plugin.mount_async_task("one_at_a_time", max_concurrent=1)
async def one_at_a_time(handle: AsyncTaskHandle, trace: Trace, seconds: float) -> AsyncIterator[TaskCtl]:
    trace.now(trace.began)
    await trio.sleep(seconds)
    yield TaskCtl.success("done")


async def start(manager: TaskManager, task_type: str, *args: Any, task_id: str = "T", **options: Any) -> list[Ended]:
    """Start ``task_type``; returns the list its terminal callback appends to (with virtual times)."""
    ends: list[Ended] = []
    await manager.start(task_type, task_id, "chat", plugin, *args, on_terminal=recorder(ends), **options)
    return ends


def timed_out(ends: list[Ended], timeout: float) -> Ended:
    """The one ending, which must be a FAIL carrying a TaskTimeout of ``timeout``."""
    assert len(ends) == 1, ends
    [end] = ends
    assert end.ctl.signal is TaskSignal.FAIL, end.ctl
    error = end.ctl.data
    assert isinstance(error, TaskTimeout)
    assert isinstance(error, TaskError)
    assert isinstance(error, TimeoutError)
    assert error.timeout == timeout
    assert f"task_timeout of {timeout:g} seconds" in end.ctl.message
    return end


# -- the deadline passes ------------------------------------------------------------------------------------


async def test_deadline_during_a_wait_fails_with_task_timeout(autojump_clock: trio.testing.MockClock) -> None:
    trace = Trace()
    async with open_task_manager() as manager:
        t0 = trio.current_time()
        ends = await start(manager, "waits", trace, task_timeout=5)
        await trio.sleep(4.5)
        assert manager.is_running("waits", "T")
        await wait_until_idle(manager)
        assert manager.get_state("waits", "T") == ends[0].ctl
    end = timed_out(ends, 5)
    assert end.at == t0 + 5
    assert "waits:T" in end.ctl.message
    assert trace.finally_at == [t0 + 5], "the body's finally ran, at the deadline"


async def test_a_timed_out_terminal_can_be_copied_and_pickled(autojump_clock: trio.testing.MockClock) -> None:
    """Its TaskTimeout keeps its arguments, as built-in exceptions do, so copy and pickle rebuild it."""
    async with open_task_manager() as manager:
        ends = await start(manager, "waits", Trace(), task_timeout=2.5)
        await wait_until_idle(manager)
    ctl = timed_out(ends, 2.5).ctl
    for copied in (copy.deepcopy(ctl), pickle.loads(pickle.dumps(ctl))):
        assert copied.signal is TaskSignal.FAIL
        assert copied.message == ctl.message
        assert isinstance(copied.data, TaskTimeout)
        assert (copied.data.task, copied.data.timeout) == ("waits:T", 2.5)
        assert str(copied.data) == str(ctl.data) == "task waits:T ran past its task_timeout of 2.5 seconds"


async def test_a_task_ending_before_its_deadline_is_unaffected(autojump_clock: trio.testing.MockClock) -> None:
    trace = Trace()
    async with open_task_manager() as manager:
        ends = await start(manager, "naps", trace, 4.0, task_timeout=5)
        await trio.sleep(10)
    assert [end.ctl for end in ends] == [TaskCtl.success("woke")]


async def test_a_terminal_yielded_before_the_deadline_stands_when_cleanup_overruns(
    autojump_clock: trio.testing.MockClock,
) -> None:
    trace = Trace()
    async with open_task_manager() as manager:
        t0 = trio.current_time()
        ends = await start(manager, "slow_cleanup", trace, task_timeout=3)
        await wait_until_idle(manager)
    assert [end.ctl for end in ends] == [TaskCtl.success("finished before the deadline")]
    assert trace.finally_at == [t0 + 3], "the cleanup was cut short at the deadline"
    assert ends[0].at == t0 + 3


async def test_deadline_during_a_retry_backoff(autojump_clock: trio.testing.MockClock) -> None:
    trace = Trace()
    async with open_task_manager() as manager:
        t0 = trio.current_time()
        ends = await start(manager, "long_backoff", trace, task_timeout=5)
        await trio.sleep(4)
        state = manager.get_state("long_backoff", "T")
        assert state is not None
        assert state.message.startswith("Attempt 1 of 3 failed")
        await wait_until_idle(manager)
    end = timed_out(ends, 5)
    assert end.at == t0 + 5, "the backoff was cut short by the deadline"
    assert trace.began == [t0], "no second attempt"
    assert end.ctl.attempt == 2, "the attempt the backoff was for, as the state before it said"
    assert state.attempt == 2


async def test_the_deadline_covers_every_retry_attempt(autojump_clock: trio.testing.MockClock) -> None:
    trace = Trace()
    async with open_task_manager() as manager:
        t0 = trio.current_time()
        # Attempts of 2 seconds with 1 second between: 0-2, 3-5, 6-8; each is shorter than the deadline.
        ends = await start(manager, "flaky", trace, 2.0, task_timeout=7)
        await wait_until_idle(manager)
    end = timed_out(ends, 7)
    assert end.at == t0 + 7
    assert trace.began == [t0, t0 + 3, t0 + 6]
    assert trace.finally_at == [t0 + 2, t0 + 5, t0 + 7]
    assert end.ctl.attempt == 3


async def test_queue_time_does_not_count(autojump_clock: trio.testing.MockClock) -> None:
    first, second, third = Trace(), Trace(), Trace()
    async with open_task_manager() as manager:
        t0 = trio.current_time()
        await start(manager, "one_at_a_time", first, 10.0, task_id="A")
        fits = await start(manager, "one_at_a_time", second, 3.0, task_id="B", task_timeout=5)
        overruns = await start(manager, "one_at_a_time", third, 8.0, task_id="C", task_timeout=5)
        await wait_until_idle(manager)
    assert second.began == [t0 + 10]
    assert [end.ctl for end in fits] == [TaskCtl.success("done")], "5 seconds from its start, 13 from the queue"
    assert third.began == [t0 + 13]
    assert timed_out(overruns, 5).at == t0 + 18


async def test_infinite_task_timeout_means_no_deadline(autojump_clock: trio.testing.MockClock) -> None:
    trace = Trace()
    async with open_task_manager() as manager:
        t0 = trio.current_time()
        ends = await start(manager, "naps", trace, 1e6, task_timeout=math.inf)
        await trio.sleep(1e6 + 1)
    assert [end.ctl for end in ends] == [TaskCtl.success("woke")]
    assert ends[0].at == t0 + 1e6


async def test_deadline_on_a_coroutine_body(autojump_clock: trio.testing.MockClock) -> None:
    trace = Trace()
    async with open_task_manager() as manager:
        t0 = trio.current_time()
        late = await start(manager, "coroutine", trace, 60.0, task_id="late", task_timeout=2.5)
        in_time = await start(manager, "coroutine", Trace(), 2.0, task_id="in_time", task_timeout=2.5)
        await wait_until_idle(manager)
    assert timed_out(late, 2.5).at == t0 + 2.5
    assert trace.finally_at == [t0 + 2.5]
    assert [end.ctl for end in in_time] == [TaskCtl.success(data="returned")]


async def test_cancel_before_the_deadline_is_cancel_not_timeout(autojump_clock: trio.testing.MockClock) -> None:
    async with open_task_manager() as manager:
        ends = await start(manager, "waits", Trace(), task_timeout=5)
        await trio.sleep(1)
        assert await manager.cancel("waits", "T") is True
    assert [end.ctl for end in ends] == [TaskCtl.cancel("Cancelled by cancel()")]


# -- bad values --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_timeout", "error"),
    [
        (0, ValueError),
        (0.0, ValueError),
        (-1, ValueError),
        (-math.inf, ValueError),
        (math.nan, ValueError),
        (True, TypeError),
        ("5", TypeError),
        ([5], TypeError),
    ],
)
async def test_bad_task_timeout_is_refused(task_timeout: object, error: type[Exception]) -> None:
    async with open_task_manager() as manager:
        with pytest.raises(error, match="task_timeout") as caught:
            await manager.start("waits", "T", "chat", plugin, Trace(), task_timeout=task_timeout)
        assert repr(task_timeout) in str(caught.value)
        assert not manager.is_running("waits", "T")


plugin.mount_async_task("long_cleanup")(shielded_cleanup)


LATER_STOPS: dict[str, Any] = {
    "cancel": lambda manager: manager.cancel("long_cleanup", "S"),
    "filtered stop_all": lambda manager: manager.stop_all(plugin=plugin),
    "stop_all": lambda manager: manager.stop_all(),
    "close": None,
}


@pytest.mark.parametrize("later", list(LATER_STOPS))
async def test_a_stop_during_the_cleanup_after_a_timeout_keeps_the_timeout(
    autojump_clock: trio.testing.MockClock, later: str
) -> None:
    ends: list[Ended] = []
    async with open_task_manager() as manager, trio.open_nursery() as nursery:
        await manager.start("long_cleanup", "S", "chat", plugin, task_timeout=1, on_terminal=recorder(ends))
        await trio.sleep(1.5)  # past its deadline: in its cleanup
        if LATER_STOPS[later] is not None:
            nursery.start_soon(LATER_STOPS[later], manager)
    [end] = ends
    assert (end.ctl.signal, type(end.ctl.data)) == (TaskSignal.FAIL, TaskTimeout), "the first stop names the end"


async def test_a_deadline_passing_during_the_cleanup_after_a_stop_keeps_the_stop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ends: list[Ended] = []
    async with open_task_manager() as manager:
        await manager.start("long_cleanup", "S", "chat", plugin, task_timeout=1, on_terminal=recorder(ends))
        await trio.sleep(0.5)
        assert await manager.stop_all() == 1  # its cleanup runs past the deadline
    assert [end.ctl for end in ends] == [TaskCtl.cancel("Cancelled by stop_all()")]


FROM_OUTSIDE = TaskCtl.cancel("Cancelled from outside the task manager")


@pytest.mark.parametrize("later", list(LATER_STOPS))
async def test_a_cancel_from_outside_names_the_end_when_the_deadline_and_stops_come_during_the_cleanup(
    autojump_clock: trio.testing.MockClock, later: str
) -> None:
    """The scope around the manager is cancelled first, while the block is busy (shielded), so the close it
    causes comes later; the task's deadline passes during its cleanup, and another stop reaches it there."""
    ends: list[Ended] = []
    with trio.CancelScope() as outer:
        async with open_task_manager() as manager:
            await manager.start("long_cleanup", "S", "chat", plugin, task_timeout=1, on_terminal=recorder(ends))
            await trio.sleep(0.5)
            outer.cancel()  # the task's cleanup runs from 0.5 to 1.5, past its deadline at 1
            with trio.CancelScope(shield=True):
                await trio.sleep(0.75)  # the block is busy: its close (or the stop below) comes during the cleanup
                if LATER_STOPS[later] is not None:
                    await LATER_STOPS[later](manager)
                    assert trio.current_time() == 1.5, "the stop waited for the end of the cleanup"
    assert outer.cancelled_caught
    assert [end.ctl for end in ends] == [FROM_OUTSIDE]


async def test_the_deadline_names_the_end_when_a_cancel_from_outside_comes_during_the_cleanup(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ends: list[Ended] = []
    with trio.CancelScope() as outer:
        async with open_task_manager() as manager:
            await manager.start("long_cleanup", "S", "chat", plugin, task_timeout=1, on_terminal=recorder(ends))
            await trio.sleep(1.5)  # past its deadline: in its cleanup (to 2)
            outer.cancel()
            with trio.CancelScope(shield=True):
                await trio.sleep(1)  # the task ends before the close
    assert outer.cancelled_caught
    [end] = ends
    assert (end.ctl.signal, type(end.ctl.data)) == (TaskSignal.FAIL, TaskTimeout)


async def test_a_deadline_around_the_manager_is_a_cancel_from_outside(autojump_clock: trio.testing.MockClock) -> None:
    ends: list[Ended] = []
    with trio.move_on_after(1) as outer:
        async with open_task_manager() as manager:
            await manager.start("long_cleanup", "S", "chat", plugin, task_timeout=5, on_terminal=recorder(ends))
            await trio.sleep_forever()
    assert outer.cancelled_caught
    assert [end.ctl for end in ends] == [FROM_OUTSIDE], "its own deadline had not passed"


@pytest.mark.parametrize(("outer_after", "own_timeout"), [(1.25, 1), (5, 10)])
async def test_the_task_deadline_that_passed_first_names_the_end_when_the_outer_one_passes_during_the_cleanup(
    autojump_clock: trio.testing.MockClock, outer_after: float, own_timeout: float
) -> None:
    """The deadline around the manager is moved later once the manager is open (5 to 10) in the second case."""
    ends: list[Ended] = []
    with trio.move_on_after(outer_after) as outer:
        async with open_task_manager() as manager:
            await manager.start(
                "long_cleanup", "S", "chat", plugin, task_timeout=own_timeout - 0.5, on_terminal=recorder(ends)
            )
            if outer_after == 5:
                outer.deadline = trio.current_time() + 10
            await trio.sleep_forever()
    [end] = ends
    assert (end.ctl.signal, type(end.ctl.data)) == (TaskSignal.FAIL, TaskTimeout)
