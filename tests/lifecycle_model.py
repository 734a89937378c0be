"""A reference model of the lifecycle contract, for the property tests.

Scripts are lists of body operations; events are outside actions at given
times. :func:`predict` simulates them in virtual time and says how each task
ends (signal and time) and whether a KeyboardInterrupt escapes the manager.

Every time source (a task's start, an outside event) has its own fractional
phase; sleeps, timeouts and grace periods are whole seconds. A task's timers
therefore keep the phase of whatever last woke it, and no two things ever
happen at the same virtual instant: the model never has to guess Trio's
scheduling order.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

import attrs

from trio_tasks import TaskSignal

# Body operations (tuples, so that Hypothesis prints them readably):
#   ("progress",) ("checkpoint",) ("sleep", s) ("wait", key, timeout | None)
#   ("raise",) ("junk",) ("terminal", TaskSignal) ("return",) ("interrupt",)
Op = tuple[Any, ...]

# Outside events: kind is one of "start", "notify", "cancel_wait", "cancel_all",
# "cancel", "stop_all", "exit", "outer_cancel".


@attrs.frozen
class Event:
    time: float
    kind: str
    task: int = -1
    key: str = ""


@attrs.frozen
class Scenario:
    scripts: tuple[tuple[Op, ...], ...]
    events: tuple[Event, ...]  # sorted by time; always ends with "exit" or "outer_cancel"
    grace: int


@attrs.define
class Outcome:
    signal: TaskSignal
    time: float


@attrs.define
class Prediction:
    outcomes: dict[int, Outcome]  # by task index; tasks never started are absent
    interrupted: bool  # a KeyboardInterrupt escapes the manager's block
    outer_cancelled: bool  # the scope around the manager caught the cancellation


@attrs.define
class _Task:
    script: Sequence[Op]
    pc: int = 0
    waiting: str | None = None
    wake_at: float | None = None
    pending: dict[str, Any] = attrs.Factory(dict)
    waits_closed: bool = False
    outcome: Outcome | None = None


class _Sim:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.tasks: dict[int, _Task] = {}
        self.interrupted = False

    def running(self) -> list[_Task]:
        return [t for t in self.tasks.values() if t.outcome is None]

    def end(self, task: _Task, signal: TaskSignal, now: float) -> None:
        task.outcome = Outcome(signal, now)
        task.waiting = None
        task.wake_at = None

    def cancel_everything(self, now: float) -> None:
        for task in self.running():
            self.end(task, TaskSignal.CANCEL, now)

    def advance(self, task: _Task, now: float) -> None:
        """Run ``task`` from its current op until it blocks or ends."""
        task.wake_at = None
        task.waiting = None
        while task.pc < len(task.script):
            op = task.script[task.pc]
            task.pc += 1
            kind = op[0]
            if kind in ("progress", "checkpoint"):
                continue
            if kind == "sleep":
                task.wake_at = now + op[1]
                return
            if kind == "wait":
                key, timeout = op[1], op[2]
                if task.waits_closed:
                    self.end(task, TaskSignal.CANCEL, now)
                    return
                if key in task.pending:
                    del task.pending[key]
                    continue
                task.waiting = key
                task.wake_at = None if timeout is None else now + timeout
                return
            if kind in ("raise", "junk"):
                self.end(task, TaskSignal.FAIL, now)
            elif kind == "terminal":
                self.end(task, op[1], now)
            elif kind == "return":
                self.end(task, TaskSignal.SUCCESS, now)
            elif kind == "interrupt":
                self.end(task, TaskSignal.FAIL, now)
                self.interrupted = True
                self.cancel_everything(now)
            else:  # pragma: no cover - a generator bug
                raise AssertionError(f"unknown op {op!r}")
            return
        self.end(task, TaskSignal.SUCCESS, now)

    def next_timer(self, before: float) -> tuple[float, _Task] | None:
        timers = [(t.wake_at, i) for i, t in self.tasks.items() if t.outcome is None and t.wake_at is not None]
        timers = [(when, i) for when, i in timers if when < before]
        if not timers:
            return None
        when, i = min(timers)
        return when, self.tasks[i]

    def run_timers_until(self, limit: float) -> None:
        while not self.interrupted and (timer := self.next_timer(limit)) is not None:
            when, task = timer
            self.advance(task, when)

    def apply(self, event: Event) -> None:
        now = event.time
        task = self.tasks.get(event.task)
        alive = task is not None and task.outcome is None
        if event.kind == "start":
            new = self.tasks[event.task] = _Task(self.scenario.scripts[event.task])
            self.advance(new, now)
        elif event.kind == "notify" and alive:
            assert task is not None
            if task.waiting == event.key:
                self.advance(task, now)
            else:
                task.pending[event.key] = "value"
        elif event.kind == "cancel_wait" and alive:
            assert task is not None
            if task.waiting == event.key:
                self.end(task, TaskSignal.CANCEL, now)
        elif event.kind == "cancel_all" and alive:
            assert task is not None
            task.waits_closed = True
            if task.waiting is not None:
                self.end(task, TaskSignal.CANCEL, now)
        elif event.kind == "cancel" and alive:
            assert task is not None
            self.end(task, TaskSignal.CANCEL, now)
        elif event.kind == "stop_all":
            self.cancel_everything(now)


def predict(scenario: Scenario) -> Prediction:
    """How every started task ends, and what escapes the manager."""
    sim = _Sim(scenario)
    ended_by = "exit"
    for event in scenario.events:
        sim.run_timers_until(event.time)
        if sim.interrupted:
            break
        if event.kind in ("exit", "outer_cancel"):
            ended_by = event.kind
        if event.kind == "exit":
            if scenario.grace:
                sim.run_timers_until(event.time + scenario.grace)
            if not sim.interrupted:
                sim.cancel_everything(event.time + scenario.grace)
            break
        if event.kind == "outer_cancel":
            sim.cancel_everything(event.time)
            break
        sim.apply(event)
        if sim.interrupted:
            break
    outcomes = {i: t.outcome for i, t in sim.tasks.items() if t.outcome is not None}
    assert len(outcomes) == len(sim.tasks), "the model left a task running"
    outer = ended_by == "outer_cancel" and not sim.interrupted
    return Prediction(outcomes, sim.interrupted, outer)


def phases(count: int) -> list[float]:
    """``count`` distinct fractional phases, exact in binary floating point."""
    assert count < 64
    return [(k + 1) / 64 for k in range(count)]


def order(events: list[Event]) -> tuple[Event, ...]:
    """Sort events by time (times are distinct by construction)."""
    return tuple(heapq.nsmallest(len(events), events, key=lambda e: e.time))
