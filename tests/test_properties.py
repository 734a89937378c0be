"""Property test: random task bodies and outside events against the lifecycle model.

Hypothesis generates task scripts (progress, checkpoints, sleeps, waits with and
without timeouts, raises, non-TaskCtl yields, terminal yields, early returns,
KeyboardInterrupt) and outside events (start, notify, cancel_wait, cancel_all,
cancel, stop_all, manager exit with or without a grace period, cancellation of
a scope around the manager). Each scenario runs for real on a MockClock and
must match :mod:`lifecycle_model`: every started task fires exactly one
terminal callback, with the predicted signal at the predicted time; nothing is
left running; only the predicted exception escapes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from lifecycle_model import Event, Op, Outcome, Prediction, Scenario, order, phases, predict

from trio_tasks import AsyncTaskHandle, Plugin, TaskCtl, TaskManager, TaskSignal, open_task_manager

plugin = Plugin(name="Property", module_name="property")
_TERMINALS = {
    TaskSignal.SUCCESS: TaskCtl.success("scripted success"),
    TaskSignal.FAIL: TaskCtl.fail("scripted failure"),
    TaskSignal.CANCEL: TaskCtl.cancel("scripted cancel"),
}


@plugin.mount_async_task("script")
async def scripted_body(handle: AsyncTaskHandle, script: tuple[Op, ...]) -> AsyncIterator[Any]:
    for op in script:
        kind = op[0]
        if kind == "progress":
            yield TaskCtl.report_progress("working", 50)
        elif kind == "checkpoint":
            await trio.sleep(0)
        elif kind == "sleep":
            await trio.sleep(op[1])
        elif kind == "wait":
            await handle.wait(op[1], timeout=op[2])
        elif kind == "raise":
            raise ValueError("scripted error")
        elif kind == "junk":
            yield 42
        elif kind == "terminal":
            yield _TERMINALS[op[1]]
        elif kind == "return":
            return
        elif kind == "interrupt":
            raise KeyboardInterrupt


# -- strategies --------------------------------------------------------------------------------

_common_ops = st.one_of(
    st.just(("progress",)),
    st.just(("checkpoint",)),
    st.tuples(st.just("sleep"), st.integers(1, 4)),
    st.tuples(st.just("wait"), st.sampled_from("ab"), st.one_of(st.none(), st.integers(0, 4))),
)
_ending_ops = st.one_of(
    st.just(("raise",)),
    st.just(("junk",)),
    st.tuples(st.just("terminal"), st.sampled_from(list(_TERMINALS))),
    st.just(("return",)),
)

_rare_interrupt = st.integers(0, 19).map(lambda n: n == 0)

_event_kinds = st.sampled_from(
    ["notify", "notify", "notify", "cancel_wait", "cancel_all", "cancel", "cancel", "stop_all", "exit"]
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    count = draw(st.integers(1, 5))
    scripts: list[tuple[Op, ...]] = []
    for _ in range(count):
        script = draw(st.lists(st.one_of(_common_ops, _common_ops, _ending_ops), max_size=6))
        if draw(_rare_interrupt):
            script.insert(draw(st.integers(0, len(script))), ("interrupt",))
        scripts.append(tuple(script))
    starts = [draw(st.integers(0, 8)) for _ in range(count)]
    others = draw(
        st.lists(
            st.tuples(_event_kinds, st.integers(0, count - 1), st.sampled_from("ab"), st.integers(0, 16)),
            max_size=10,
        )
    )
    phase = phases(count + len(others) + 1)
    events = [Event(starts[i] + phase[i], "start", i) for i in range(count)]
    events += [
        Event(when + phase[count + j], kind, task, key) for j, (kind, task, key, when) in enumerate(others)
    ]
    last = int(max(e.time for e in events)) + 1 + phase[-1]
    events.append(Event(last, draw(st.sampled_from(["exit", "exit", "outer_cancel"]))))
    return Scenario(tuple(scripts), order(events), draw(st.sampled_from([0, 0, 1, 3])))


# -- running a scenario for real ----------------------------------------------------------------


@attrs.define
class Observed:
    endings: dict[int, list[Outcome]] = attrs.Factory(dict)
    violations: list[str] = attrs.Factory(list)
    interrupted: bool = False
    outer_cancelled: bool = False
    leftover: list[str] = attrs.Factory(list)


def _callback(manager: TaskManager, index: int, seen: Observed) -> Callable[[TaskCtl], None]:
    task_id = f"t{index}"

    def on_terminal(ctl: TaskCtl) -> None:
        seen.endings.setdefault(index, []).append(Outcome(ctl.signal, trio.current_time()))
        if manager.is_running("script", task_id):
            seen.violations.append(f"{task_id} still running inside its callback")
        if manager.get_state("script", task_id) is not ctl:
            seen.violations.append(f"{task_id}: get_state is not the terminal inside its callback")

    return on_terminal


async def _apply(manager: TaskManager, scenario: Scenario, event: Event, seen: Observed) -> None:
    task_id = f"t{event.task}"
    if event.kind == "start":
        script = scenario.scripts[event.task]
        on_terminal = _callback(manager, event.task, seen)
        await manager.start("script", task_id, "chat", plugin, script, on_terminal=on_terminal)
    elif event.kind == "cancel":
        await manager.cancel("script", task_id)
    elif event.kind == "stop_all":
        await manager.stop_all()
    elif (handle := manager.get_handle("script", task_id)) is not None:
        if event.kind == "notify":
            handle.notify(event.key, "value")
        elif event.kind == "cancel_wait":
            handle.cancel_wait(event.key)
        elif event.kind == "cancel_all":
            handle.cancel_all()


def run_for_real(scenario: Scenario) -> Observed:
    seen = Observed()

    async def main() -> None:
        manager: TaskManager | None = None
        try:
            with trio.CancelScope() as outer:
                async with open_task_manager(grace_period=scenario.grace) as manager:
                    for event in scenario.events:
                        await trio.sleep_until(event.time)
                        if event.kind == "exit":
                            break
                        if event.kind == "outer_cancel":
                            outer.cancel()
                            await trio.lowlevel.checkpoint()
                        await _apply(manager, scenario, event, seen)
            seen.outer_cancelled = outer.cancelled_caught
        except KeyboardInterrupt:
            seen.interrupted = True
        assert manager is not None
        seen.leftover = manager.get_running_tasks()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return seen


def check(scenario: Scenario, prediction: Prediction, seen: Observed) -> None:
    assert seen.violations == []
    assert seen.leftover == [], "nothing may be left running"
    assert all(len(ends) == 1 for ends in seen.endings.values()), f"one terminal per task: {seen.endings}"
    actual = {index: ends[0] for index, ends in seen.endings.items()}
    assert actual == prediction.outcomes
    assert seen.interrupted == prediction.interrupted
    assert seen.outer_cancelled == prediction.outer_cancelled


@given(scenarios())
def test_every_task_ends_once_as_the_model_predicts(scenario: Scenario) -> None:
    check(scenario, predict(scenario), run_for_real(scenario))


def test_model_examples() -> None:
    """A few hand-written scenarios, so a broken model cannot pass silently."""
    approve_then_fail = Scenario(
        scripts=(
            (("wait", "a", None), ("terminal", TaskSignal.SUCCESS)),
            (("sleep", 2), ("raise",)),
            (("wait", "b", 3),),
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
        grace=0,
    )
    prediction = predict(approve_then_fail)
    assert prediction.outcomes == {
        0: Outcome(TaskSignal.SUCCESS, 1.125),
        1: Outcome(TaskSignal.FAIL, 2.5),
        2: Outcome(TaskSignal.SUCCESS, 3.75),
    }
    check(approve_then_fail, prediction, run_for_real(approve_then_fail))

    interrupted = Scenario(
        scripts=((("sleep", 1), ("interrupt",)), (("wait", "a", None),)),
        events=order([Event(0.25, "start", 0), Event(0.5, "start", 1), Event(5.5, "outer_cancel")]),
        grace=3,
    )
    prediction = predict(interrupted)
    assert prediction.interrupted
    assert prediction.outcomes == {0: Outcome(TaskSignal.FAIL, 1.25), 1: Outcome(TaskSignal.CANCEL, 1.25)}
    check(interrupted, prediction, run_for_real(interrupted))
