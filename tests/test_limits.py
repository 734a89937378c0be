"""Concurrency limits: ``max_concurrent`` per task type and per manager, ``on_limit="queue"`` and ``"reject"``.

Every body runs inside :class:`Probe` context managers, which count the bodies running at once (up when the body
begins, down in its ``finally``), remember the highest count and record the order in which bodies began.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import math
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Literal

import attrs
import pytest
import trio
import trio.testing
from recording import Ended, Endings, wait_until_idle

from trio_tasks import (
    AsyncTaskHandle,
    Plugin,
    RetryPolicy,
    TaskCtl,
    TaskError,
    TaskManager,
    TaskSignal,
    TaskTimeout,
    TooManyTasks,
    open_task_manager,
)

OnLimit = Literal["queue", "reject"]
Outcome = Literal["success", "raise", "fail", "wait"]


@attrs.define
class Probe:
    """Counts the bodies running at once and records the order in which they began."""

    running: int = 0
    peak: int = 0
    begun: list[str] = attrs.Factory(list)

    @contextlib.contextmanager
    def body(self, task_id: str) -> Iterator[None]:
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.begun.append(task_id)
        try:
            yield
        finally:
            self.running -= 1


async def job(
    handle: AsyncTaskHandle, probes: Sequence[Probe], seconds: float, outcome: Outcome
) -> AsyncIterator[TaskCtl]:
    """Runs ``seconds`` of virtual time inside every probe, then ends as ``outcome`` says."""
    with contextlib.ExitStack() as stack:
        for probe in probes:
            stack.enter_context(probe.body(handle.task_id))
        yield TaskCtl.report_progress("working", 10)
        if outcome == "wait":
            await handle.wait("go")
        else:
            await trio.sleep(seconds)
        if outcome == "raise":
            raise RuntimeError("boom")
        if outcome == "fail":
            yield TaskCtl.fail("gave up")
        yield TaskCtl.success("done")


async def coroutine_job(handle: AsyncTaskHandle, probe: Probe) -> None:
    with probe.body(handle.task_id):
        await trio.sleep(1)


def mounted(*task_types: str, max_concurrent: int | None = None, on_limit: OnLimit = "queue") -> Plugin:
    """A fresh plugin with ``job`` mounted under each of ``task_types`` (default: ``"job"``)."""
    plugin = Plugin(name="Limits", module_name="limits")
    for task_type in task_types or ("job",):
        plugin.mount_async_task(task_type, max_concurrent=max_concurrent, on_limit=on_limit)(job)
    return plugin


@attrs.define
class Tasks:
    """Starts ``job`` tasks on one manager and records every terminal callback with its virtual time."""

    manager: TaskManager
    plugin: Plugin
    endings: Endings = attrs.Factory(Endings)

    async def start(
        self,
        task_id: str,
        *probes: Probe,
        seconds: float = 1.0,
        outcome: Outcome = "success",
        task_type: str = "job",
        **options: Any,
    ) -> AsyncTaskHandle:
        on_terminal = self.endings.callback(task_id)
        return await self.manager.start(
            task_type, task_id, "chat", self.plugin, probes, seconds, outcome, on_terminal=on_terminal, **options
        )

    def ended(self, task_id: str) -> Ended:
        """The one ending of ``task_id``; fails unless its callback fired exactly once."""
        return self.endings.only(task_id)


def is_queued(state: TaskCtl | None) -> bool:
    return state is not None and state.signal is TaskSignal.PROGRESS and state.message.startswith("Queued")


# -- the limit holds under random starts, cancels and ends --------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 6, 7])
async def test_limit_one_with_a_hundred_queued_starts_and_random_cancels(
    autojump_clock: trio.testing.MockClock, seed: int
) -> None:
    rng = random.Random(seed)
    probe = Probe()
    ids = [f"T{n:03d}" for n in range(100)]
    cancelled: set[str] = set()
    cancelled_queued: set[str] = set()
    async with open_task_manager() as manager:
        tasks = Tasks(manager, mounted(max_concurrent=1))
        for n, task_id in enumerate(ids):
            await tasks.start(task_id, probe, seconds=rng.uniform(0.1, 2.0))
            assert probe.running <= 1
            if rng.random() < 0.4:
                victim = rng.choice(ids[: n + 1])
                if manager.is_running("job", victim):
                    queued = victim not in probe.begun
                    assert is_queued(manager.get_state("job", victim)) is queued
                    before = trio.current_time()
                    assert await manager.cancel("job", victim, grace=rng.choice([None, 0.5])) is True
                    cancelled.add(victim)
                    if queued:
                        cancelled_queued.add(victim)
                        assert trio.current_time() == before, "a queued task is cancelled at once, grace or not"
            if rng.random() < 0.3:
                await trio.sleep(rng.uniform(0, 3))
        await wait_until_idle(manager)
    assert probe.peak == 1
    assert probe.running == 0
    assert probe.begun == sorted(probe.begun), "bodies begin first come, first served"
    assert set(probe.begun) == set(ids) - cancelled_queued, "every task not cancelled while queued ran its body"
    assert cancelled_queued, "the seed should cancel some queued tasks"
    for task_id in ids:
        ctl = tasks.ended(task_id).ctl
        if task_id in cancelled_queued:
            assert ctl == TaskCtl.cancel("Cancelled by cancel()")
        elif task_id in cancelled:
            assert ctl.signal in (TaskSignal.SUCCESS, TaskSignal.CANCEL)
        else:
            assert ctl == TaskCtl.success("done")


async def test_queued_bodies_begin_in_start_order(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe()
    async with open_task_manager() as manager:
        tasks = Tasks(manager, mounted(max_concurrent=2))
        for n in range(8):
            await tasks.start(f"T{n}", probe, seconds=1 + 0.1 * n * n)  # no two tasks end at the same time
        await wait_until_idle(manager)
    assert probe.begun == [f"T{n}" for n in range(8)]
    assert probe.peak == 2


# -- queued tasks -------------------------------------------------------------------------------------------


async def test_a_queued_task_counts_as_running_and_says_it_is_queued(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe()
    async with open_task_manager() as manager:
        tasks = Tasks(manager, mounted(max_concurrent=1))
        await tasks.start("A", probe, seconds=10)
        started_at = trio.current_time()
        await tasks.start("B", probe, seconds=10)
        assert trio.current_time() == started_at, "start returns at once when queueing"
        assert probe.begun == ["A"]
        assert manager.is_running("job", "B")
        assert manager.get_handle("job", "B") is not None
        assert manager.get_running_tasks() == ["job:A", "job:B"]
        state = manager.get_state("job", "B")
        assert state is not None
        assert state.signal is TaskSignal.PROGRESS
        assert state.message.startswith("Queued")
        await trio.sleep(11)
        assert probe.begun == ["A", "B"]
        assert manager.get_state("job", "B") == TaskCtl.report_progress("working", 10)
        await wait_until_idle(manager)
    assert tasks.ended("A").at == started_at + 10
    assert tasks.ended("B").at == started_at + 20, "B began when A's slot freed"


async def test_a_task_cancelled_while_queued_ends_cancel_without_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_task_manager() as manager:
        tasks = Tasks(manager, mounted(max_concurrent=1))
        t0 = trio.current_time()
        await tasks.start("A", probe, seconds=10)
        await tasks.start("B", probe, seconds=10)
        await tasks.start("C", probe, seconds=10)
        assert await manager.cancel("job", "B") is True
        assert trio.current_time() == t0
        assert not manager.is_running("job", "B")
        assert manager.get_running_tasks() == ["job:A", "job:C"]
        await wait_until_idle(manager)
    assert tasks.ended("B").ctl == TaskCtl.cancel("Cancelled by cancel()")
    assert tasks.ended("B").at == t0, "cancelled at once"
    assert tasks.ended("C").at == t0 + 20, "C took the slot after A, skipping B"
    assert probe.begun == ["A", "C"]


async def racing_rounds(tasks: Tasks, probe: Probe) -> AsyncIterator[tuple[int, str, AsyncTaskHandle]]:
    """16 rounds, each starting a task A that waits for "go" (it holds the one slot): the round, the id of the
    B to queue behind it, and A's handle."""
    for round_ in range(16):
        yield round_, f"B{round_}", await tasks.start(f"A{round_}", probe, outcome="wait")


async def test_a_queued_task_cancelled_just_as_its_slot_frees_never_runs() -> None:
    """The slot of A goes to B in the same scheduling batch in which B is cancelled, still queued.

    Trio runs a batch in random order, so each round has even odds of handing B the slot before the
    cancel; 16 rounds make a miss vanishingly unlikely, and a correct library passes every round.
    """
    probe = Probe()
    async with open_task_manager() as manager:
        tasks = Tasks(manager, mounted(max_concurrent=1))
        async for round_, b, first in racing_rounds(tasks, probe):
            await tasks.start(b, probe)
            first.notify("go")
            await trio.lowlevel.checkpoint()  # A and this test now run in the same batch
            assert is_queued(manager.get_state("job", b))
            assert await manager.cancel("job", b) is True
            assert tasks.ended(b).ctl == TaskCtl.cancel("Cancelled by cancel()")
            assert b not in probe.begun, f"round {round_}: {b} was cancelled while queued, yet its body ran"


async def test_a_queued_task_whose_slot_frees_before_its_runner_begins_runs_as_running() -> None:
    """A's end hands its slot to B in the scheduling batch of B's runner's first step: B still says "Started"
    and is "running" while its body runs, so a cancel with a grace period gives it the grace.

    As above, each round has even odds of handing the slot on first; a correct library passes every round.
    """
    probe = Probe()
    async with open_task_manager() as manager:
        tasks = Tasks(manager, mounted(max_concurrent=1))
        async for round_, b, first in racing_rounds(tasks, probe):
            async with manager.watch("job", b, buffer=None) as events:
                first.notify("go")  # A ends in its next step, in the same batch as B's runner's first one
                await tasks.start(b, probe, outcome="wait")
                await trio.testing.wait_all_tasks_blocked()
                assert b in probe.begun
                assert [info.status for info in manager.list_tasks() if info.task_id == b] == ["running"]
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(functools.partial(manager.cancel, "job", b, grace=10))
                    await trio.testing.wait_all_tasks_blocked()
                    handle = manager.get_handle("job", b)
                    assert handle is not None, f"round {round_}: B's running body got no grace"
                    handle.notify("go")  # it ends by itself within the grace
                seen = [(event.status, event.ctl.message) async for event in events]
            assert [status for status, _ in seen] == ["queued", "running", "running", "ended"], f"round {round_}"
            assert seen[1][1] == "Started: a concurrency slot came free", f"round {round_}"
            assert tasks.ended(b).ctl == TaskCtl.success("done")


async def test_a_queued_coroutine_body_cancelled_is_closed_without_a_warning(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plugin = Plugin(name="Limits", module_name="limits")
    plugin.mount_async_task("co", max_concurrent=1)(coroutine_job)
    probe = Probe()
    endings: list[TaskCtl] = []
    # pyproject's filterwarnings=error fails this test on "coroutine 'coroutine_job' was never awaited".
    async with open_task_manager() as manager:
        await manager.start("co", "A", "chat", plugin, probe)
        await manager.start("co", "B", "chat", plugin, probe, on_terminal=endings.append)
        assert await manager.cancel("co", "B") is True
    assert endings == [TaskCtl.cancel("Cancelled by cancel()")]
    assert probe.begun == ["A"]


async def test_a_task_keeps_its_slot_through_a_retry_backoff(autojump_clock: trio.testing.MockClock) -> None:
    """A's first attempt fails and backs off for 60 s; B, started meanwhile, waits until A's last attempt ends."""
    plugin = Plugin(name="Limits", module_name="limits")
    began: list[tuple[str, float]] = []

    @plugin.mount_async_task("job", max_concurrent=1, retry=RetryPolicy(attempts=2, backoff=60.0))
    async def fails_once(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
        began.append((handle.task_id, trio.current_time()))
        await trio.sleep(1)
        if handle.task_id == "A" and len(began) == 1:
            raise ConnectionError("flaky")
        yield TaskCtl.success("done")

    async with open_task_manager() as manager:
        t0 = trio.current_time()
        await manager.start("job", "A", "chat", plugin)
        await trio.sleep(2)  # A is in its backoff
        await manager.start("job", "B", "chat", plugin)
        assert [info.status for info in manager.list_tasks() if info.task_id == "B"] == ["queued"]
        await wait_until_idle(manager)
    assert began == [("A", t0), ("A", t0 + 61), ("B", t0 + 62)]


async def test_tasks_cancelled_while_queued_behind_a_long_wait_are_let_go(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The one slot is held, a task waits first in line for hours, and thousands queue behind it and are
    cancelled: with a bounded history, their handles must not pile up in the queue."""
    probe = Probe()
    async with open_task_manager(history_limit=10) as manager:
        tasks = Tasks(manager, mounted(max_concurrent=1))
        await tasks.start("holder", probe, outcome="wait")
        await tasks.start("first in line", probe, outcome="wait")
        for n in range(2_000):
            await tasks.start(f"C{n}", probe)
            assert await manager.cancel("job", f"C{n}") is True
        gc.collect()
        alive = sum(isinstance(thing, AsyncTaskHandle) for thing in gc.get_objects())
        assert alive <= 10 + 2 + 8, f"{alive} handles alive: cancelled queued tasks are kept"
        assert manager.get_running_tasks() == ["job:holder", "job:first in line"]
        await manager.stop_all()
    assert tasks.ended("first in line").ctl == TaskCtl.cancel("Cancelled by stop_all()")


# -- reject -------------------------------------------------------------------------------------------------


async def test_reject_raises_too_many_tasks_naming_the_limit(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe()
    async with open_task_manager() as manager:
        tasks = Tasks(manager, mounted(max_concurrent=2, on_limit="reject"))
        await tasks.start("A", probe, seconds=5)
        await tasks.start("B", probe, seconds=10)
        with pytest.raises(TooManyTasks, match=r"at most max_concurrent=2 tasks at once and has 2 ") as caught:
            await tasks.start("C", probe)
        assert isinstance(caught.value, TaskError)
        assert isinstance(caught.value, ValueError)
        assert "job:C" in str(caught.value)
        assert not manager.is_running("job", "C")
        assert manager.get_state("job", "C") is None
        await trio.sleep(6)
        await tasks.start("C", probe)  # A's slot is free again
        await wait_until_idle(manager)
    assert probe.begun == ["A", "B", "C"]
    assert tasks.ended("C").ctl == TaskCtl.success("done")


async def test_manager_wide_reject_names_the_manager_limit() -> None:
    probe = Probe()
    async with open_task_manager(max_concurrent=1, on_limit="reject") as manager:
        tasks = Tasks(manager, mounted("render", "fetch"))
        await tasks.start("R", probe, task_type="render", outcome="wait")
        with pytest.raises(TooManyTasks, match=r"task manager .*max_concurrent=1"):
            await tasks.start("F", probe, task_type="fetch")
    assert probe.begun == ["R"]


# -- manager-wide limits, and a type limit inside a manager limit -----------------------------------------------


async def test_manager_limit_covers_every_task_type(autojump_clock: trio.testing.MockClock) -> None:
    every = Probe()
    async with open_task_manager(max_concurrent=2) as manager:
        tasks = Tasks(manager, mounted("render", "fetch"))
        for n in range(4):
            await tasks.start(f"R{n}", every, task_type="render", seconds=2)
            await tasks.start(f"F{n}", every, task_type="fetch", seconds=3.5)  # no two ends at the same time
        assert every.begun == ["R0", "F0"]
        assert is_queued(manager.get_state("render", "R1"))
        assert is_queued(manager.get_state("fetch", "F3"))
        await wait_until_idle(manager)
    assert every.peak == 2
    assert every.begun == [f"{kind}{n}" for n in range(4) for kind in "RF"]
    assert all(ends[0].ctl == TaskCtl.success("done") for ends in tasks.endings.by_task.values())


async def test_type_limit_and_manager_limit_combine(autojump_clock: trio.testing.MockClock) -> None:
    every, renders, fetches = Probe(), Probe(), Probe()
    plugin = Plugin(name="Limits", module_name="limits")
    plugin.mount_async_task("render", max_concurrent=1)(job)
    plugin.mount_async_task("fetch")(job)
    async with open_task_manager(max_concurrent=3) as manager:
        tasks = Tasks(manager, plugin)
        for n in range(4):
            await tasks.start(f"R{n}", every, renders, task_type="render", seconds=2)
        for n in range(6):
            await tasks.start(f"F{n}", every, fetches, task_type="fetch", seconds=0.7 + n * 0.31)
        assert every.begun == ["R0", "F0", "F1"], "one render (its type limit), then fetches up to the manager's 3"
        await wait_until_idle(manager)
    assert renders.peak == 1
    assert every.peak == 3
    assert renders.begun == ["R0", "R1", "R2", "R3"]
    assert fetches.begun == [f"F{n}" for n in range(6)]
    assert len(tasks.endings.by_task) == 10
    assert all(len(ends) == 1 for ends in tasks.endings.by_task.values())


async def test_with_two_limits_bodies_still_begin_in_start_order(autojump_clock: trio.testing.MockClock) -> None:
    every = Probe()
    plugin = Plugin(name="Limits", module_name="limits")
    plugin.mount_async_task("render", max_concurrent=1)(job)
    plugin.mount_async_task("fetch")(job)
    async with open_task_manager(max_concurrent=1) as manager:
        tasks = Tasks(manager, plugin)
        await tasks.start("R0", every, task_type="render", seconds=5)
        await tasks.start("R1", every, task_type="render", seconds=5)  # waits at the render limit
        await tasks.start("F0", every, task_type="fetch", seconds=5)  # waits at the manager's limit
        await tasks.start("R2", every, task_type="render", seconds=5)
        await tasks.start("F1", every, task_type="fetch", seconds=5)
        await wait_until_idle(manager)
    assert every.begun == ["R0", "R1", "F0", "R2", "F1"], "R1 started before F0: it goes first when R0 ends"
    assert [tasks.ended(task_id).at for task_id in every.begun] == [5, 10, 15, 20, 25]


# -- every way of ending frees the slot ------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["success", "raise", "fail", "cancel", "timeout"])
async def test_every_ending_frees_the_slot(autojump_clock: trio.testing.MockClock, how: str) -> None:
    probe = Probe()
    async with open_task_manager() as manager:
        tasks = Tasks(manager, mounted(max_concurrent=1))
        t0 = trio.current_time()
        if how == "timeout":
            await tasks.start("A", probe, seconds=math.inf, task_timeout=4)
        elif how == "cancel":
            await tasks.start("A", probe, seconds=math.inf)
        else:
            await tasks.start("A", probe, seconds=4, outcome=how)  # type: ignore[arg-type]
        await tasks.start("B", probe, seconds=1)
        if how == "cancel":
            await trio.sleep(4)
            assert await manager.cancel("job", "A") is True
        await wait_until_idle(manager)
    first = tasks.ended("A")
    assert first.at == t0 + 4
    expected = {
        "success": TaskSignal.SUCCESS,
        "raise": TaskSignal.FAIL,
        "fail": TaskSignal.FAIL,
        "cancel": TaskSignal.CANCEL,
        "timeout": TaskSignal.FAIL,
    }[how]
    assert first.ctl.signal is expected
    if how == "timeout":
        assert isinstance(first.ctl.data, TaskTimeout)
    assert probe.begun == ["A", "B"]
    assert tasks.ended("B").at == t0 + 5, "B began the moment A ended"
    assert tasks.ended("B").ctl == TaskCtl.success("done")


# -- a limit belongs to one manager -----------------------------------------------------------------------------


@pytest.mark.parametrize("on_limit", ["queue", "reject"])
async def test_a_limit_is_per_manager(on_limit: OnLimit) -> None:
    probe = Probe()
    plugin = mounted(max_concurrent=1, on_limit=on_limit)
    async with open_task_manager() as first, open_task_manager() as second:
        one, two = Tasks(first, plugin), Tasks(second, plugin)
        await one.start("A", probe, outcome="wait")
        await two.start("B", probe, outcome="wait")
        assert probe.begun == ["A", "B"], "the second manager's task did not wait for the first manager's slot"
        assert not is_queued(second.get_state("job", "B"))
    assert probe.peak == 2
