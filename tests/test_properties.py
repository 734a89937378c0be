"""Property test: random task bodies and outside events against the lifecycle model.

Hypothesis generates task scripts (progress, checkpoints, sleeps, waits with and
without timeouts, cooperative waits for a cancel request, raises, non-TaskCtl
yields, terminal yields (some inside a nursery of the body), early returns, KeyboardInterrupt, seconds of shielded
cleanup when cancelled, some raising at its end), per-task deadlines
and sync or async terminal callbacks, a concurrency limit (queue or reject), a
retry policy, and outside events (start, also through ``testing.run_task`` whose caller may give up, notify,
cancel_wait, cancel_all,
cancel and stop_all (of every task, twice at once, or of one chat) with or without a grace period, manager exit with or
without a grace period, cancellation of a scope around the manager, also while it closes). Each
scenario runs for real on a MockClock and must match :mod:`lifecycle_model`:
every accepted start fires exactly one terminal callback, with the predicted
signal at the predicted time, named by what the model says ended it (the body,
a cancel, a stop_all, the close, a cancel from outside or an interrupt, its
deadline, a cancelled wait); rejected starts fire none; async callbacks finish
exactly when predicted; nothing is left running; only the predicted exception
escapes.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import attrs
import trio
import trio.testing
from hypothesis import event as note
from hypothesis import given
from hypothesis import strategies as st
from lifecycle_model import (
    CALLBACK_OFFSET,
    DEADLINE_OFFSET,
    Event,
    Op,
    Outcome,
    Prediction,
    Retry,
    Scenario,
    TaskSetup,
    WatcherSetup,
    chat_of,
    order,
    phases,
    predict,
)

from trio_tasks import (
    AsyncTaskHandle,
    Plugin,
    RetryPolicy,
    TaskCtl,
    TaskEvent,
    TaskManager,
    TaskSignal,
    TaskTimeout,
    TooManyTasks,
    open_task_manager,
)
from trio_tasks.testing import run_task

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

_TERMINALS = {
    TaskSignal.SUCCESS: TaskCtl.success("scripted success"),
    TaskSignal.FAIL: TaskCtl.fail("scripted failure"),
    TaskSignal.CANCEL: TaskCtl.cancel("scripted cancel"),
}


async def scripted_body(handle: AsyncTaskHandle, script: tuple[Op, ...]) -> AsyncIterator[Any]:
    cleanup = 0  # seconds of shielded cleanup a cancel finds the body to need, from a ("cleanup", s, raises) on
    cleanup_raises = False
    try:
        for op in script:
            kind = op[0]
            if kind == "cleanup":
                cleanup, cleanup_raises = op[1], op[2]
            elif kind == "progress":
                yield TaskCtl.report_progress("working", 50)
            elif kind == "checkpoint":
                await trio.sleep(0)
            elif kind == "sleep":
                await trio.sleep(op[1])
            elif kind == "nursery_sleep":  # the same, in a nursery of the body, beside a child sleeping as long
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(trio.sleep, op[1])
                    await trio.sleep(op[1])
            elif kind == "wait":
                await handle.wait(op[1], timeout=op[2])
            elif kind == "until_cancel":
                await handle.cancel_requested()
                yield TaskCtl.cancel("stopped when asked")
                return
            elif kind == "raise":
                raise ValueError("scripted error")
            elif kind == "junk":
                yield 42
            elif kind == "terminal" and op[2]:  # yielded inside the body's own nursery, a child running in it
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(trio.sleep_forever)
                    yield _TERMINALS[op[1]]
            elif kind == "terminal":
                yield _TERMINALS[op[1]]
            elif kind == "return":
                return
            elif kind == "interrupt":
                raise KeyboardInterrupt
    except (trio.Cancelled, BaseExceptionGroup) as exc:  # (a group: of the Cancelleds of a nursery_sleep)
        if isinstance(exc, BaseExceptionGroup) and exc.split(trio.Cancelled)[1] is not None:
            raise
        if cleanup:
            with trio.CancelScope(shield=True):
                await trio.sleep(cleanup)
            if cleanup_raises:
                raise ValueError("scripted cleanup error") from None
        raise


def make_plugin(scenario: Scenario) -> Plugin:
    """A plugin mounting the scripted body with the scenario's type-level options."""
    plugin = Plugin(name="Property", module_name="property")
    retry = scenario.retry
    plugin.mount_async_task(
        "script",
        max_concurrent=scenario.limit if scenario.limit_on_type else None,
        on_limit="reject" if scenario.on_limit == "reject" else "queue",
        retry=None if retry is None else RetryPolicy(retry.attempts, retry.backoff, retry.factor, retry.max_backoff),
    )(scripted_body)
    return plugin


# -- strategies --------------------------------------------------------------------------------

_plain_ops = st.one_of(
    st.just(("progress",)),
    st.just(("checkpoint",)),
    st.tuples(st.just("sleep"), st.integers(1, 4)),
    st.tuples(st.just("nursery_sleep"), st.integers(1, 4)),
    st.tuples(st.just("wait"), st.sampled_from("ab"), st.one_of(st.none(), st.integers(0, 4))),
    st.just(("until_cancel",)),
)
_cleanup_ops = st.tuples(st.just("cleanup"), st.integers(1, 3), st.booleans())
_common_ops = st.one_of(_plain_ops, _cleanup_ops)  # (see scenarios() too)
_ending_ops = st.one_of(
    st.just(("raise",)),
    st.just(("junk",)),
    st.tuples(st.just("terminal"), st.sampled_from(list(_TERMINALS)), st.booleans()),
    st.just(("return",)),
)

_rare = st.integers(0, 19).map(lambda n: n == 0)

_event_kinds = st.sampled_from(
    [
        "notify", "notify", "notify", "cancel_wait", "cancel_all", "cancel", "cancel",
        "stop_all", "stop_all_twice", "stop_chat", "exit",
    ]
)
_WITH_GRACE = ("cancel", "stop_all", "stop_all_twice", "stop_chat")
_retries = st.one_of(
    st.none(),
    st.builds(Retry, st.integers(2, 3), st.integers(1, 2), st.integers(1, 2), st.just(3)),
)


_watchers = st.lists(
    st.builds(
        WatcherSetup,
        st.one_of(st.none(), st.integers(0, 4)),
        st.one_of(st.none(), st.integers(1, 3)),
        st.booleans(),
    ),
    max_size=3,
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    limit = draw(st.one_of(st.none(), st.integers(1, 2)))
    on_limit = draw(st.sampled_from(["queue", "queue", "reject"]))
    # With a queue, tasks can begin at the same instant (freed slots); a KeyboardInterrupt
    # racing another task at one instant has no single right answer, so those do not mix.
    queue = limit is not None and on_limit == "queue"
    interrupts_allowed = not queue
    # The model stops at an interrupt; a body cleaning up after it would hold it back while events go on
    # (more starts, another interrupt), so a scenario has cleanups or an interrupt, not both.
    cleanups = draw(st.booleans())
    count = draw(st.integers(1, 5))
    tasks: list[TaskSetup] = []
    for _ in range(count):
        ops = _common_ops if cleanups else _plain_ops
        script = draw(st.lists(st.one_of(ops, ops, _ending_ops), max_size=6))
        if interrupts_allowed and not cleanups and draw(_rare):
            script.insert(draw(st.integers(0, len(script))), ("interrupt",))
        if cleanups and draw(st.integers(0, 1)) == 0:  # half the bodies clean up when cancelled (from the start)
            script.insert(0, draw(_cleanup_ops))
        timeout = draw(st.one_of(st.none(), st.none(), st.integers(0, 6)))
        callback = draw(st.one_of(st.none(), st.integers(0, 3)))
        through_run_task = not cleanups and not queue and draw(st.booleans())
        tasks.append(TaskSetup(tuple(script), timeout, callback, through_run_task))
    starts = [draw(st.integers(0, 8)) for _ in range(count)]
    others = draw(
        st.lists(
            st.tuples(
                _event_kinds, st.integers(0, count - 1), st.sampled_from("ab"), st.integers(0, 16), st.integers(0, 2)
            ),
            max_size=10,
        )
    )
    # Half the callers of run_task give up, a few seconds after the start (or never, once the task has ended).
    others += [
        ("give_up", i, "a", starts[i] + draw(st.integers(0, 4)), 0)
        for i, setup in enumerate(tasks)
        if setup.run_task and draw(st.booleans())
    ]
    phase = phases(count + len(others) + 1)
    events = [Event(starts[i] + phase[i], "start", i) for i in range(count)]
    events += [
        Event(when + phase[count + j], kind, task, key, grace if kind in _WITH_GRACE else 0)
        for j, (kind, task, key, when, grace) in enumerate(others)
    ]
    last = int(max(e.time for e in events)) + 1 + phase[-1]
    ending = draw(st.sampled_from(["exit", "exit", "outer_cancel"]))
    events.append(Event(last, ending))
    # After an exit, perhaps a cancel around the manager while it closes: at a fraction of a second (3/256)
    # no timer of the scenario shares (they fall on 1/64ths, plus 1/512 for deadlines, 1/1024 for callbacks).
    interrupts = any(op[0] == "interrupt" for setup in tasks for op in setup.script)
    outer_after = None
    if ending == "exit" and not interrupts and draw(st.booleans()):
        outer_after = draw(st.integers(0, 3)) + 3 / 256
    return Scenario(
        tasks=tuple(tasks),
        events=order(events),
        grace=draw(st.sampled_from([0, 0, 1, 3])),
        limit=limit,
        on_limit=on_limit,
        limit_on_type=draw(st.booleans()),
        retry=draw(_retries),
        watchers=tuple(w for w in draw(_watchers) if w.task is None or w.task < count),
        outer_after=outer_after,
    )


# -- running a scenario for real ----------------------------------------------------------------


@attrs.define
class Watched:
    """What one watcher saw."""

    setup: WatcherSetup
    events: list[TaskEvent] = attrs.Factory(list)
    dropped: int = 0
    ended_at: float | None = None


@attrs.define
class Observed:
    endings: dict[int, list[Outcome]] = attrs.Factory(dict)
    rejected: set[int] = attrs.Factory(set)
    callbacks_finished: set[int] = attrs.Factory(set)
    violations: list[str] = attrs.Factory(list)
    interrupted: bool = False
    outer_cancelled: bool = False
    escaped_group: str = ""  # an exception group that left the manager's block (never expected)
    leftover: list[str] = attrs.Factory(list)
    watched: list[Watched] = attrs.Factory(list)  # the first: every task, unbounded, eager
    returned: dict[int, TaskCtl] = attrs.Factory(dict)  # the last TaskCtl run_task returned, by task
    callers: dict[int, trio.CancelScope] = attrs.Factory(dict)  # around each call of run_task


async def _read(
    manager: TaskManager, watched: Watched, release: trio.Event, *, task_status: trio.TaskStatus[None]
) -> None:
    setup = watched.setup
    key = () if setup.task is None else ("script", f"t{setup.task}")
    async with manager.watch(*key, buffer=setup.buffer) as events:
        task_status.started()
        if setup.lazy:
            await release.wait()
        async for event in events:
            watched.events.append(event)
    watched.ended_at = trio.current_time()
    watched.dropped = events.dropped


_NAMED_BY = {
    "Cancelled by cancel()": "cancel",
    "Cancelled by stop_all()": "stop_all",
    "Cancelled: the task manager closed": "closed",
    "Cancelled from outside the task manager": "outside",
    "Cancelled: the caller of run_task stopped waiting for it": "left",
}


def outcome_of(ctl: TaskCtl, at: float) -> Outcome:
    """The outcome a terminal TaskCtl reports, named as the model names it (see WHYS)."""
    why = "body"
    if ctl.signal is TaskSignal.CANCEL:
        why = _NAMED_BY.get(ctl.message, "wait" if ctl.message.startswith("Cancelled: wait ") else "body")
    elif isinstance(ctl.data, TaskTimeout):
        why = "timeout"
    return Outcome(ctl.signal, at, why)


def _callback(manager: TaskManager, index: int, length: int | None, seen: Observed) -> Callable[[TaskCtl], Any]:
    task_id = f"t{index}"

    def record(ctl: TaskCtl) -> None:
        seen.endings.setdefault(index, []).append(outcome_of(ctl, trio.current_time()))
        if manager.is_running("script", task_id):
            seen.violations.append(f"{task_id} still running inside its callback")
        if manager.get_state("script", task_id) is not ctl:
            seen.violations.append(f"{task_id}: get_state is not the terminal inside its callback")

    if length is None:
        return record

    async def record_then_sleep(ctl: TaskCtl) -> None:
        record(ctl)
        await trio.sleep(length + CALLBACK_OFFSET)
        seen.callbacks_finished.add(index)

    return record_then_sleep


async def _apply(
    manager: TaskManager, plugin: Plugin, driver: trio.Nursery, scenario: Scenario, event: Event, seen: Observed
) -> None:
    task_id = f"t{event.task}"
    if event.kind == "start":
        setup = scenario.tasks[event.task]
        on_terminal = _callback(manager, event.task, setup.callback, seen)
        timeout = None if setup.timeout is None else setup.timeout + DEADLINE_OFFSET
        if setup.run_task:
            seen.callers[event.task] = trio.CancelScope()
            driver.start_soon(_through_run_task, plugin, event.task, setup.script, on_terminal, timeout, seen)
            return
        try:
            await manager.start(
                "script", task_id, chat_of(event.task), plugin, setup.script, on_terminal=on_terminal,
                task_timeout=timeout,
            )
        except TooManyTasks:
            seen.rejected.add(event.task)
    elif event.kind == "cancel":
        driver.start_soon(partial(manager.cancel, "script", task_id, grace=event.grace))
    elif event.kind == "stop_all":
        driver.start_soon(partial(manager.stop_all, grace=event.grace))
    elif event.kind == "stop_all_twice":  # two at one instant: each opens a generation; neither stops the other's
        driver.start_soon(partial(manager.stop_all, grace=event.grace))
        driver.start_soon(partial(manager.stop_all, grace=event.grace))
    elif event.kind == "give_up":
        if event.task in seen.callers:
            seen.callers[event.task].cancel()
    elif event.kind == "stop_chat":  # a filtered stop_all: each matching task's own scope, not the shared one
        driver.start_soon(partial(manager.stop_all, chat_key=chat_of(event.task), grace=event.grace))
    elif (handle := manager.get_handle("script", task_id)) is not None:
        if event.kind == "notify":
            handle.notify(event.key, "value")
        elif event.kind == "cancel_wait":
            handle.cancel_wait(event.key)
        elif event.kind == "cancel_all":
            handle.cancel_all()


async def _through_run_task(
    plugin: Plugin,
    index: int,
    script: tuple[Op, ...],
    on_terminal: Callable[[TaskCtl], Any],
    timeout: float | None,
    seen: Observed,
) -> None:
    """Start task ``index`` with run_task, in a scope that a "give_up" (or the exit) cancels."""
    with seen.callers[index]:
        try:
            ctls = await run_task(
                plugin, "script", script, task_id=f"t{index}", chat_key=chat_of(index),
                on_terminal=on_terminal, task_timeout=timeout,
            )
        except TooManyTasks:
            seen.rejected.add(index)
            return
        seen.returned[index] = ctls[-1]


async def _cancel_at(scope: trio.CancelScope, when: float) -> None:
    await trio.sleep_until(when)
    scope.cancel()


def run_for_real(scenario: Scenario) -> Observed:
    seen = Observed()
    plugin = make_plugin(scenario)

    async def main() -> None:
        manager: TaskManager | None = None
        from_block: BaseException | None = None
        release = trio.Event()  # lazy watchers start reading once the manager has closed
        seen.watched = [Watched(WatcherSetup(None, None, lazy=False))]
        seen.watched += [Watched(setup) for setup in scenario.watchers]
        async with trio.open_nursery() as readers:  # outside the manager: they read to the end
            try:
                with trio.CancelScope() as outer:
                    if scenario.outer_after is not None:  # (a no-op if the manager has closed by then)
                        exit_at = next(event.time for event in scenario.events if event.kind == "exit")
                        readers.start_soon(_cancel_at, outer, exit_at + scenario.outer_after)
                    try:
                        async with open_task_manager(
                            grace_period=scenario.grace,
                            max_concurrent=None if scenario.limit_on_type else scenario.limit,
                            on_limit="reject" if scenario.on_limit == "reject" else "queue",
                        ) as manager:
                            for watched in seen.watched:
                                await readers.start(_read, manager, watched, release)
                            try:
                                async with trio.open_nursery() as driver:
                                    for event in scenario.events:
                                        await trio.sleep_until(event.time)
                                        if event.kind == "exit":
                                            driver.cancel_scope.cancel()  # cuts short the grace of cancels in flight
                                            break
                                        if event.kind == "outer_cancel":
                                            outer.cancel()
                                            await trio.lowlevel.checkpoint()
                                        await _apply(manager, plugin, driver, scenario, event, seen)
                            except BaseException as exc:  # (the driver's group of Cancelleds, after outer_cancel)
                                from_block = exc
                                raise
                    except BaseExceptionGroup as group:
                        if group is not from_block:  # the manager passes on the block's own exception unchanged
                            seen.escaped_group = repr(group)
                        raise
                seen.outer_cancelled = outer.cancelled_caught
            except KeyboardInterrupt:
                seen.interrupted = True
            finally:
                release.set()
        assert manager is not None
        seen.leftover = manager.get_running_tasks()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return seen


def _as_predicted(outcome: Outcome, predicted: Outcome | None) -> Outcome:
    """``outcome`` named as ``predicted`` when that allows several names and it has one of them."""
    if predicted is None or outcome.why not in predicted.why.split("|"):
        return outcome
    return attrs.evolve(outcome, why=predicted.why)


def check(prediction: Prediction, seen: Observed) -> None:
    assert seen.violations == []
    assert seen.leftover == [], "nothing may be left running"
    assert all(len(ends) == 1 for ends in seen.endings.values()), f"one terminal per task: {seen.endings}"
    actual = {index: ends[0] for index, ends in seen.endings.items()}
    actual = {index: _as_predicted(outcome, prediction.outcomes.get(index)) for index, outcome in actual.items()}
    assert actual == prediction.outcomes
    assert seen.rejected == prediction.rejected
    assert seen.callbacks_finished == prediction.callbacks_finished
    assert seen.interrupted == prediction.interrupted
    assert seen.outer_cancelled == prediction.outer_cancelled
    assert not seen.escaped_group, "an exception group left the manager's block instead of one exception"
    for index, ctl in seen.returned.items():
        assert outcome_of(ctl, actual[index].time) == actual[index], "run_task returned the terminal last"
    check_watchers(seen)


def _by_task(events: list[TaskEvent]) -> dict[str, list[TaskEvent]]:
    grouped: dict[str, list[TaskEvent]] = {}
    for event in events:
        grouped.setdefault(event.task_id, []).append(event)
    return grouped


def _same(one: TaskEvent, other: TaskEvent) -> bool:
    """The same update: the very TaskCtl the task reported, at the same time (each read makes a new TaskEvent)."""
    return one.ctl is other.ctl and one.at == other.at and one.task_id == other.task_id


def _is_subsequence(part: list[TaskEvent], whole: list[TaskEvent]) -> bool:
    rest = iter(whole)
    return all(any(_same(event, other) for other in rest) for event in part)


def check_watchers(seen: Observed) -> None:
    """Every watcher of a task sees its terminal event exactly once, after all the progress events it was
    not told it dropped: what it saw is the unbounded watcher's sequence minus ``dropped`` progress events."""
    truth, *others = seen.watched
    everything = _by_task(truth.events)
    assert set(everything) == {f"t{index}" for index in seen.endings}, "events of exactly the accepted tasks"
    for index, ends in seen.endings.items():
        events = everything[f"t{index}"]
        assert [e for e in events if e.ctl.is_terminal] == [events[-1]], "one terminal event, the last"
        assert outcome_of(events[-1].ctl, events[-1].at) == ends[0], "the terminal event is the callback's"
    for watched in others:
        setup = watched.setup
        mine = _by_task(watched.events)
        watching = set(everything) if setup.task is None else {f"t{setup.task}"} & set(everything)
        assert set(mine) <= watching
        dropped = 0
        for task_id in watching:
            events, full = mine.get(task_id, []), everything[task_id]
            assert _is_subsequence(events, full), "in order, nothing invented"
            assert events, "the terminal event is never dropped"
            assert _same(events[-1], full[-1])
            assert all(not e.ctl.is_terminal for e in events[:-1])
            dropped += len(full) - len(events)
        assert dropped == watched.dropped, "every missing event was counted as dropped"
        if setup.task is not None and not setup.lazy and watching:
            assert watched.ended_at == everything[f"t{setup.task}"][-1].at, "a watch of one task ends with it"


@given(scenarios())
def test_every_task_ends_once_as_the_model_predicts(scenario: Scenario) -> None:
    prediction = predict(scenario)
    for path in sorted(prediction.notes):
        note(path)
    check(prediction, run_for_real(scenario))


def test_model_examples() -> None:
    """A few hand-written scenarios, so a broken model cannot pass silently."""
    approve_then_fail = Scenario(
        tasks=(
            TaskSetup((("wait", "a", None), ("terminal", TaskSignal.SUCCESS, False))),
            TaskSetup((("sleep", 2), ("raise",))),
            TaskSetup((("wait", "b", 3),)),
        ),
        events=order(
            [
                Event(0.25, "start", 0),
                Event(0.5, "start", 1),
                Event(0.75, "start", 2),
                Event(1.125, "notify", 0, "a"),
                Event(9.5, "exit"),
            ]
        ),
    )
    prediction = predict(approve_then_fail)
    assert prediction.outcomes == {
        0: Outcome(TaskSignal.SUCCESS, 1.125),
        1: Outcome(TaskSignal.FAIL, 2.5),
        2: Outcome(TaskSignal.SUCCESS, 3.75),
    }
    check(prediction, run_for_real(approve_then_fail))

    interrupted = Scenario(
        tasks=(TaskSetup((("sleep", 1), ("interrupt",))), TaskSetup((("wait", "a", None),))),
        events=order([Event(0.25, "start", 0), Event(0.5, "start", 1), Event(5.5, "outer_cancel")]),
        grace=3,
    )
    prediction = predict(interrupted)
    assert prediction.interrupted
    assert prediction.outcomes == {
        0: Outcome(TaskSignal.FAIL, 1.25),
        1: Outcome(TaskSignal.CANCEL, 1.25, "outside"),
    }
    check(prediction, run_for_real(interrupted))


def test_model_examples_with_control() -> None:
    """Limits, deadlines, grace, retries and async callbacks in one hand-checked scenario."""
    scenario = Scenario(
        tasks=(
            TaskSetup((("sleep", 2),), callback=1),  # 0: holds the one slot until 2.25
            TaskSetup((("until_cancel",),), timeout=5),  # 1: queued until 2.25, asked at 3.5
            TaskSetup((("raise",),)),  # 2: queued; cancelled while queued at 3.5
            TaskSetup((("sleep", 4),), timeout=1),  # 3: starts after the stop; deadline
        ),
        events=order(
            [
                Event(0.25, "start", 0),
                Event(0.5, "start", 1),
                Event(0.75, "start", 2),
                Event(3.5, "stop_all", grace=2),
                Event(3.625, "start", 3),
                Event(9.875, "exit"),
            ]
        ),
        grace=1,
        limit=1,
        retry=Retry(attempts=2, backoff=1, factor=2, max_backoff=3),
    )
    prediction = predict(scenario)
    assert prediction.outcomes == {
        0: Outcome(TaskSignal.SUCCESS, 2.25),
        1: Outcome(TaskSignal.CANCEL, 3.5),  # (it answers the request with its own CANCEL)
        2: Outcome(TaskSignal.CANCEL, 3.5, "stop_all"),
        3: Outcome(TaskSignal.FAIL, 3.625 + 1 + DEADLINE_OFFSET, "timeout"),
    }
    assert prediction.callbacks_finished == {0}
    check(prediction, run_for_real(scenario))
