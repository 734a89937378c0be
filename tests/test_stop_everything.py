"""``stop_all()`` without filters, and the manager's close: one cancel reaches every running task.

The tasks share a nursery (a generation); stopping them all moves later starts to a new one and cancels the old.
These tests pin what that must not change: who is stopped, with which terminal, when ``stop_all`` returns,
what ``is_cancelled`` says, and that nothing is left behind.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from functools import partial

import pytest
import trio
import trio.testing
from recording import Ended, Endings, wait_until_idle
from task_scripts import shielded_cleanup

from trio_tasks import AsyncTaskHandle, ManagerClosed, Plugin, TaskCtl, TaskManager, TaskSignal, open_task_manager
from trio_tasks._generations import Generation

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import ExceptionGroup

plugin = Plugin(name="StopEverything", module_name="stop_everything")

BY_STOP_ALL = TaskCtl.cancel("Cancelled by stop_all()")
BY_CLOSE = TaskCtl.cancel("Cancelled: the task manager closed")
FROM_OUTSIDE = TaskCtl.cancel("Cancelled from outside the task manager")


@plugin.mount_async_task("parked")
async def parked(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
    yield TaskCtl.report_progress("parked", 10)
    await handle.wait("go")
    yield TaskCtl.success("went")


@plugin.mount_async_task("stubborn")
async def stubborn(handle: AsyncTaskHandle, seen: list[bool]) -> AsyncIterator[TaskCtl]:
    """Ignores requests to stop; records ``is_cancelled`` in its finally block."""
    try:
        yield TaskCtl.report_progress("working", 10)
        await trio.sleep_forever()
    finally:
        seen.append(handle.is_cancelled)


@plugin.mount_async_task("sleeper")
async def sleeper(handle: AsyncTaskHandle, seconds: float) -> AsyncIterator[TaskCtl]:
    await trio.sleep(seconds)
    yield TaskCtl.success("slept")


async def test_tasks_started_after_stop_all_run_on(autojump_clock: trio.testing.MockClock) -> None:
    endings = Endings()
    async with open_task_manager() as manager:
        for n in range(3):
            await manager.start("parked", f"P{n}", "chat", plugin, on_terminal=endings.callback(f"P{n}"))
        t0 = trio.current_time()
        assert await manager.stop_all() == 3
        assert manager.get_running_tasks() == []
        handle = await manager.start("parked", "P0", "chat", plugin, on_terminal=endings.callback("again"))
        await manager.start("sleeper", "S1", "chat", plugin, 2, on_terminal=endings.callback("S1"))
        assert manager.get_running_tasks() == ["parked:P0", "sleeper:S1"]
        assert not handle.is_cancelled
        handle.notify("go")
        await trio.sleep(5)
    assert [endings.only(f"P{n}") for n in range(3)] == [Ended(BY_STOP_ALL, t0)] * 3
    assert endings.only("again") == Ended(TaskCtl.success("went"), t0)
    assert endings.only("S1") == Ended(TaskCtl.success("slept"), t0 + 2)


async def test_a_second_stop_all_reaches_tasks_still_in_the_first_ones_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    endings = Endings()
    seen: list[bool] = []
    returned: list[tuple[str, int, float]] = []

    async def stop_all(name: str, grace: float | None) -> None:
        count = await manager.stop_all(grace=grace)
        returned.append((name, count, trio.current_time()))

    async with open_task_manager() as manager, trio.open_nursery() as nursery:
        await manager.start("stubborn", "S1", "chat", plugin, seen, on_terminal=endings.callback("S1"))
        t0 = trio.current_time()
        nursery.start_soon(stop_all, "first", 60)
        await trio.sleep(1)
        await manager.start("stubborn", "S2", "chat", plugin, seen, on_terminal=endings.callback("S2"))
        await trio.sleep(1)
        nursery.start_soon(stop_all, "second", None)
    assert endings.only("S1") == Ended(BY_STOP_ALL, t0 + 2)
    assert endings.only("S2") == Ended(BY_STOP_ALL, t0 + 2)
    assert sorted(returned) == [("first", 1, t0 + 2), ("second", 2, t0 + 2)]
    assert seen == [True, True]


async def runs_on(manager: TaskManager, parked_task: AsyncTaskHandle) -> None:
    """A parked task started after a stop_all: it was not asked to stop, and it goes on when notified."""
    assert not parked_task.is_cancelled
    parked_task.notify("go")
    await wait_until_idle(manager)


async def test_stop_alls_at_once_stop_what_ran_and_leave_the_manager_open(
    autojump_clock: trio.testing.MockClock,
) -> None:
    endings = Endings()
    seen: list[bool] = []
    returned: list[int] = []

    async def stop_all() -> None:
        returned.append(await manager.stop_all())

    async with open_task_manager() as manager:
        await manager.start("stubborn", "S1", "chat", plugin, seen, on_terminal=endings.callback("S1"))
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(stop_all)
        assert returned == [1, 1, 1]
        await runs_on(manager, await manager.start("parked", "P1", "chat", plugin, on_terminal=endings.callback("P1")))
        assert len(manager._generations) == 1, "the older generations have closed, the current one is open"
    assert endings.only("S1").ctl == BY_STOP_ALL
    assert endings.only("P1").ctl == TaskCtl.success("went")


async def test_a_start_while_stop_all_opens_the_next_generation_goes_there(
    autojump_clock: trio.testing.MockClock,
) -> None:
    endings = Endings()
    returned: list[int] = []
    entered = trio.Event()

    async def stop_all() -> None:
        entered.set()  # stop_all runs on at once, to its first checkpoint: opening the next generation
        returned.append(await manager.stop_all())

    async with open_task_manager() as manager:
        await manager.start("parked", "old", "chat", plugin, on_terminal=endings.callback("old"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_all)
            await entered.wait()
            new = await manager.start("parked", "new", "chat", plugin, on_terminal=endings.callback("new"))
        assert returned == [1]
        assert manager.get_running_tasks() == ["parked:new"], "started after the call: not stopped"
        await runs_on(manager, new)
    assert endings.only("old").ctl == BY_STOP_ALL
    assert endings.only("new").ctl == TaskCtl.success("went")


async def test_a_start_after_the_close_began_is_refused_even_beside_a_stop_all_in_its_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    endings = Endings()
    seen: list[bool] = []
    refused: list[ManagerClosed] = []

    async def start_late() -> None:
        await trio.sleep(0.5)  # the manager is closing by then, in its grace period
        assert manager.closed
        try:
            await manager.start("parked", "LATE", "chat", plugin, on_terminal=endings.callback("LATE"))
        except ManagerClosed as exc:
            refused.append(exc)

    async with trio.open_nursery() as nursery, open_task_manager(grace_period=1) as manager:
        await manager.start("stubborn", "S1", "chat", plugin, seen, on_terminal=endings.callback("S1"))
        nursery.start_soon(partial(manager.stop_all, grace=5))
        await trio.lowlevel.checkpoint()  # the stop_all is opening its new generation as the block ends
        nursery.start_soon(start_late)
    assert len(refused) == 1, "refused as the docs say, not started into a generation opened too late"
    assert endings.by_task["LATE"] == [], "no task started, so no terminal"
    assert endings.only("S1").ctl in (BY_STOP_ALL, BY_CLOSE)
    assert manager._generations == []


plugin.mount_async_task("slow_cleanup")(shielded_cleanup)


async def test_a_later_cancel_does_not_relabel_a_task_stop_all_has_stopped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_task_manager() as manager, trio.open_nursery() as nursery:
        await manager.start("slow_cleanup", "A", "chat", plugin)
        nursery.start_soon(manager.stop_all)
        await trio.sleep(0.5)  # A is in its cleanup
        assert await manager.cancel("slow_cleanup", "A") is True
        assert manager.get_state("slow_cleanup", "A") == BY_STOP_ALL, "the first cancel names the end"


async def test_is_cancelled_stays_true_for_stopped_tasks_only(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[bool] = []
    async with open_task_manager() as manager:
        finished = await manager.start("sleeper", "S1", "chat", plugin, 1)
        stopped = await manager.start("stubborn", "S2", "chat", plugin, seen)
        await trio.sleep(2)
        assert not finished.is_cancelled
        assert not stopped.is_cancelled
        assert await manager.stop_all() == 1
        assert stopped.is_cancelled, "stopped: stays True after the task has ended"
        assert not finished.is_cancelled, "ended before the stop: was never cancelled"
    assert seen == [True]


async def test_close_stops_tasks_of_every_generation(autojump_clock: trio.testing.MockClock) -> None:
    endings = Endings()
    seen: list[bool] = []
    async with open_task_manager() as manager:
        await manager.start("stubborn", "S1", "chat", plugin, seen, on_terminal=endings.callback("S1"))
        for n in range(3):
            await manager.stop_all()
            await manager.start("stubborn", f"T{n}", "chat", plugin, seen, on_terminal=endings.callback(f"T{n}"))
        t0 = trio.current_time()
    assert endings.only("S1") == Ended(BY_STOP_ALL, t0)
    assert [endings.only(f"T{n}").ctl for n in range(2)] == [BY_STOP_ALL] * 2
    assert endings.only("T2") == Ended(BY_CLOSE, t0)
    assert manager._generations == [], "every generation's nursery has closed"


def _generations_alive() -> int:
    gc.collect()
    return sum(isinstance(thing, Generation) for thing in gc.get_objects())


async def test_ended_generations_are_let_go(autojump_clock: trio.testing.MockClock) -> None:
    async with open_task_manager() as manager:
        before = _generations_alive()
        for n in range(50):
            await manager.start("parked", f"P{n}", "chat", plugin)
            assert await manager.stop_all() == 1
        assert len(manager._generations) == 1, "only the current generation is open"
        assert manager.get_state("parked", "P49") == BY_STOP_ALL
        assert _generations_alive() == before, "the history's handles do not keep their generation alive"


async def test_a_scope_cancelled_around_the_manager_still_reports_each_task_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    endings = Endings()
    with trio.move_on_after(5) as outer:
        async with open_task_manager() as manager:
            await manager.start("parked", "P1", "chat", plugin, on_terminal=endings.callback("P1"))
            await manager.stop_all()
            await manager.start("parked", "P2", "chat", plugin, on_terminal=endings.callback("P2"))
            await trio.sleep_forever()
    assert outer.cancelled_caught, "the Cancelled reached the scope that was cancelled"
    assert endings.only("P1").ctl == BY_STOP_ALL
    ended = endings.only("P2")
    assert ended.at == 5
    # The manager's close, which the outer cancel causes, reaches P2 in the same scheduling batch as
    # that cancel, in either order, but the cancel came first.
    assert ended.ctl == FROM_OUTSIDE
    assert manager.get_state("parked", "P2").signal is TaskSignal.CANCEL


async def in_a_nursery_of_its_own(handle: AsyncTaskHandle, cleanup: float) -> AsyncIterator[TaskCtl]:
    """Waits in a nursery of the body with a child beside it; when cancelled, cleans up for ``cleanup`` seconds."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep_forever)
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(cleanup)
    yield TaskCtl.success("never")  # pragma: no cover


plugin.mount_async_task("nursery_of_its_own")(in_a_nursery_of_its_own)


@pytest.mark.parametrize(
    ("grace", "cleanup"), [(5, 0), (0, 2)], ids=["during the grace period", "during the close's cleanup"]
)
async def test_a_cancel_around_the_manager_during_its_close_leaves_it_as_one_cancelled(
    autojump_clock: trio.testing.MockClock, grace: float, cleanup: float
) -> None:
    """The block ends at once; the deadline around the manager passes while the close waits for a task whose
    body has a nursery: the Cancelleds gathered there end the task, and one Cancelled leaves the manager."""
    endings = Endings()
    left: list[BaseException] = []
    with trio.move_on_after(1) as outer:
        try:
            async with open_task_manager(grace_period=grace) as manager:
                on_terminal = endings.callback("N")
                await manager.start("nursery_of_its_own", "N", "chat", plugin, cleanup, on_terminal=on_terminal)
        except BaseException as exc:
            left.append(exc)
            raise
    assert outer.cancelled_caught
    assert [type(exc) for exc in left] == [trio.Cancelled]
    assert endings.only("N").ctl.signal is TaskSignal.CANCEL


def test_a_start_racing_a_cancel_around_the_manager_is_refused_or_ends_cancel() -> None:
    """A task outside the cancelled scope starts a task just as a cancel around the manager lands.

    Trio runs each batch of tasks in random order, so across many runs the start comes both before
    and after the manager has begun closing: it must then raise ManagerClosed, or start a task that
    ends CANCEL exactly once, never find the tasks' nursery closed under it.
    """
    outcomes: list[str] = []

    async def scenario() -> None:
        ends: list[TaskCtl] = []
        go = trio.Event()

        async def start_late(manager: TaskManager) -> None:
            await go.wait()
            try:
                await manager.start("parked", "late", "chat", plugin, on_terminal=ends.append)
            except ManagerClosed:
                outcomes.append("refused")
            else:
                outcomes.append("started")

        async with trio.open_nursery() as outside:
            with trio.CancelScope() as outer:
                async with open_task_manager() as manager:
                    outside.start_soon(start_late, manager)
                    await trio.sleep(0)
                    outer.cancel()
                    go.set()
                    await trio.sleep_forever()
        if outcomes[-1] == "started":
            assert [ctl.signal for ctl in ends] == [TaskSignal.CANCEL]
        else:
            assert ends == []

    for _ in range(100):
        trio.run(scenario)
    assert len(outcomes) == 100
    assert set(outcomes) == {"refused", "started"}, "both orders happened"


@plugin.mount_async_task("tells_why")
async def tells_why(handle: AsyncTaskHandle, why: list[str]) -> AsyncIterator[TaskCtl]:
    """Records what the Cancelled that reaches it says."""
    yield TaskCtl.report_progress("working", 10)
    try:
        await trio.sleep_forever()
    except trio.Cancelled as cancelled:
        why.append(str(cancelled))
        raise


async def test_the_cancelled_a_body_sees_says_which_stop_of_the_manager_reached_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    why: list[str] = []
    with trio.CancelScope() as outer:
        async with open_task_manager() as manager:
            for n in range(4):
                await manager.start("tells_why", f"W{n}", f"chat-{n}", plugin, why)
            await manager.cancel("tells_why", "W0")
            await manager.stop_all(chat_key="chat-1")
            await manager.stop_all()
            for n in range(4, 6):
                await manager.start("tells_why", f"W{n}", "chat", plugin, why)
            outer.cancel()
            with trio.CancelScope(shield=True):
                await trio.sleep(1)
    this_task = "trio_tasks cancelled this task (cancel() or a filtered stop_all())"
    every_task = "trio_tasks stopped every task (an unfiltered stop_all() or the manager's close)"
    assert [text.partition(" from task ")[0] for text in why] == [
        f"cancelled due to explicit with reason {this_task!r}",
        f"cancelled due to explicit with reason {this_task!r}",
        f"cancelled due to explicit with reason {every_task!r}",
        f"cancelled due to explicit with reason {every_task!r}",
        "cancelled due to explicit",  # the scope around the manager, without a reason
        "cancelled due to explicit",
    ]


@plugin.mount_async_task("own_timeout")
async def own_timeout(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
    """A timeout of its own (at 1) that expires during a shielded step (to 2); then it waits again."""
    yield TaskCtl.report_progress("working", 10)
    with trio.move_on_after(1):
        with trio.CancelScope(shield=True):
            await trio.sleep(2)
        await trio.sleep(10)  # the Cancelled raised here is its own scope's (a deadline)
    yield TaskCtl.success("not stopped")


@pytest.mark.parametrize("task_timeout", [None, 1.8])
@pytest.mark.parametrize("how", ["stop_all", "close"])
async def test_a_stop_names_the_end_when_the_cancelled_that_ends_the_task_is_a_scope_inside_it(
    autojump_clock: trio.testing.MockClock, how: str, task_timeout: float | None
) -> None:
    """The body's own expired scope does not catch the Cancelled, since the generation around it was stopped
    (at 1.5, before the task_timeout at 1.8); that stop names the end."""
    endings = Endings()
    async with open_task_manager() as manager:
        await manager.start(
            "own_timeout", "T", "chat", plugin, on_terminal=endings.callback("T"), task_timeout=task_timeout
        )
        await trio.sleep(1.5)
        if how == "stop_all":
            assert await manager.stop_all() == 1
    assert endings.only("T").ctl == (BY_STOP_ALL if how == "stop_all" else BY_CLOSE)


@plugin.mount_async_task("sleeps_then_cleans_up")
async def sleeps_then_cleans_up(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
    yield TaskCtl.report_progress("working", 10)
    try:
        await trio.sleep(2)  # ends at the very instant the grace period does
    finally:
        with trio.CancelScope(shield=True):
            await trio.sleep(3)  # past the task_timeout at 4
    await trio.sleep(10)
    yield TaskCtl.success("not stopped")


@pytest.mark.parametrize("task_timeout", [None, 4])
async def test_a_stop_names_the_end_when_a_sleep_in_the_body_ends_at_the_same_instant(
    autojump_clock: trio.testing.MockClock, task_timeout: float | None
) -> None:
    """Trio runs one batch in a random order, so the sleep's own deadline and the stop reach the body in
    either order; twenty runs see both orders (all but surely)."""
    for n in range(20):
        endings = Endings()
        async with open_task_manager() as manager:
            await manager.start(
                "sleeps_then_cleans_up", "S", "chat", plugin, on_terminal=endings.callback("S"),
                task_timeout=task_timeout,
            )  # fmt: skip
            await trio.sleep(1)
            assert await manager.stop_all(grace=1) == 1  # asks at 1, cancels at 2
        assert endings.only("S").ctl == BY_STOP_ALL, f"run {n}"


@pytest.mark.parametrize("later", ["cancel", "filtered stop_all", "stop_all"])
async def test_a_cancel_from_outside_that_came_first_is_not_renamed_by_a_later_stop(
    autojump_clock: trio.testing.MockClock, later: str
) -> None:
    endings = Endings()
    with trio.CancelScope() as outer:
        async with open_task_manager() as manager:
            await manager.start("slow_cleanup", "C", "chat", plugin, on_terminal=endings.callback("C"))
            outer.cancel()  # its cleanup takes a second
            with trio.CancelScope(shield=True):  # the block is busy: the close comes later
                await trio.sleep(0.5)
                if later == "cancel":
                    assert await manager.cancel("slow_cleanup", "C")
                else:
                    await manager.stop_all(chat_key="chat" if later == "filtered stop_all" else None)
                assert trio.current_time() == 1, "the stop waited for the end of the cleanup"
    assert endings.only("C").ctl == FROM_OUTSIDE


async def test_a_nursery_around_the_manager_cancelled_by_a_failing_sibling_is_a_cancel_from_outside(
    autojump_clock: trio.testing.MockClock,
) -> None:
    endings = Endings()

    async def fails() -> None:
        await trio.sleep(0.5)
        raise ValueError("a sibling of the manager's block failed")

    async def manager_beside_a_failing_sibling() -> None:
        async with trio.open_nursery() as nursery, open_task_manager() as manager:
            await manager.start("slow_cleanup", "C", "chat", plugin, on_terminal=endings.callback("C"))
            nursery.start_soon(fails)
            await trio.sleep_forever()  # its close comes during the task's cleanup

    with pytest.raises(ExceptionGroup) as failed:
        await manager_beside_a_failing_sibling()
    assert failed.group_contains(ValueError, match="a sibling"), "the sibling's error propagates"
    assert endings.only("C").ctl == FROM_OUTSIDE


@pytest.mark.parametrize("how", ["cancel", "filtered stop_all", "stop_all", "close"])
async def test_a_stop_by_an_outer_manager_is_a_cancel_from_outside_for_an_inner_one(
    autojump_clock: trio.testing.MockClock, how: str
) -> None:
    """The inner manager is opened in a task of the outer one; each stop of the outer one comes from outside
    the inner one (its reason is the same text, but not the inner manager's doing)."""
    endings = Endings()

    @plugin.mount_async_task(f"hosts_a_manager_{how}")
    async def hosts_a_manager(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
        async with open_task_manager() as inner:
            await inner.start("slow_cleanup", "I", "chat", plugin, on_terminal=endings.callback("I"))
            yield TaskCtl.report_progress("hosting", 10)
            await trio.sleep_forever()

    async with open_task_manager() as outer:
        await outer.start(f"hosts_a_manager_{how}", "H", "outer-chat", plugin)
        await trio.sleep(1)  # the inner task has started
        if how == "cancel":
            await outer.cancel(f"hosts_a_manager_{how}", "H")
        elif how != "close":
            await outer.stop_all(chat_key="outer-chat" if how == "filtered stop_all" else None)
    assert endings.only("I").ctl == FROM_OUTSIDE


@plugin.mount_async_task("interrupts")
async def interrupts(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
    yield TaskCtl.report_progress("about to be interrupted", 10)
    raise KeyboardInterrupt


@pytest.mark.parametrize("in_flight", ["cancel", "filtered stop_all"])
async def test_a_stop_in_flight_does_not_rename_a_task_that_another_tasks_interrupt_reached_first(
    autojump_clock: trio.testing.MockClock, in_flight: str
) -> None:
    """Another task's KeyboardInterrupt cancels this one at 1 (its cleanup lasts to 2, and holds the interrupt
    back meanwhile); the grace period of the stop in flight runs out at 1.5."""
    endings = Endings()

    async def stop(manager: TaskManager) -> None:
        if in_flight == "cancel":
            await manager.cancel("slow_cleanup", "C", grace=1.5)
        else:
            await manager.stop_all(chat_key="chat", grace=1.5)

    async def interrupted_block() -> None:
        async with open_task_manager() as manager, trio.open_nursery() as driver:
            await manager.start("slow_cleanup", "C", "chat", plugin, on_terminal=endings.callback("C"))
            driver.start_soon(stop, manager)
            await trio.sleep(1)
            await manager.start("interrupts", "K", "chat", plugin)
            await trio.sleep_forever()

    with pytest.raises(KeyboardInterrupt):
        await interrupted_block()
    assert endings.only("C").ctl in (FROM_OUTSIDE, BY_CLOSE), "Trio's cancel, or the close it causes"


async def test_an_interrupt_that_a_cancel_from_outside_meets_leaves_the_manager_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The interrupt is held back a second by the other task's cleanup; meanwhile a scope around the manager
    is cancelled. What leaves is the KeyboardInterrupt, not a group of it and Cancelleds."""
    endings = Endings()

    async def interrupted_then_cancelled(outer: trio.CancelScope) -> None:
        async with open_task_manager() as manager:
            await manager.start("slow_cleanup", "C", "chat", plugin, on_terminal=endings.callback("C"))
            await manager.start("interrupts", "K", "chat", plugin)
            await trio.sleep(0.5)
            outer.cancel()
            await trio.sleep_forever()

    with trio.CancelScope() as outer, pytest.raises(KeyboardInterrupt):
        await interrupted_then_cancelled(outer)
    assert endings.only("C").ctl == FROM_OUTSIDE
    assert endings.only("C").at == 1, "after its cleanup"


@pytest.mark.parametrize("where", ["opening the manager", "an unfiltered stop_all"])
def test_a_ctrl_c_while_the_manager_opens_a_nursery_leaves_as_keyboard_interrupt(where: str) -> None:
    """A Ctrl-C that Trio holds for the main task reaches it inside the start of the nursery of the async
    callbacks or of a generation (each a shielded nursery.start): the start must end, and the
    KeyboardInterrupt leave trio.run, each task ended once.

    A real SIGINT, in a process of its own: Trio delivers it to the main task at one of its next
    checkpoints, which one depends on the order Trio runs ready tasks in, so the program tries 40 times."""
    program = textwrap.dedent(
        f"""
        import os, signal, trio
        from trio_tasks import Plugin, open_task_manager

        plugin = Plugin(name="P", module_name="p")

        @plugin.mount_async_task("parked")
        async def parked(handle):
            await trio.sleep_forever()

        def ctrl_c():
            trio.lowlevel.current_trio_token().run_sync_soon(os.kill, os.getpid(), signal.SIGINT)

        async def main(ended):
            if {where == "opening the manager"!r}:
                ctrl_c()
            async with open_task_manager() as manager:
                await manager.start("parked", "P", "chat", plugin, on_terminal=ended.append)
                ctrl_c()
                await manager.stop_all()
                await trio.sleep(5)

        for attempt in range(40):
            ended = []
            try:
                trio.run(main, ended)
            except KeyboardInterrupt:
                print("KeyboardInterrupt", [ctl.signal.value for ctl in ended], flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False)
    expected = "[]" if where == "opening the manager" else "['cancel']"
    assert done.stdout.splitlines() == [f"KeyboardInterrupt {expected}"] * 40, done.stderr
