"""A reference model of the lifecycle contract, for the property tests.

Scripts are lists of body operations; events are outside actions at given
times. :func:`predict` simulates them in virtual time and says how each task
ends (signal and time), which starts are rejected by a full limit, which async
terminal callbacks finish, and what escapes the manager.

Times are chosen so that the model never has to guess Trio's scheduling
order. Every outside event has its own phase (a fraction k/64); sleeps, wait
timeouts, backoffs and grace periods are whole seconds, so a task's timers
keep the phase of whatever last woke it. A task's deadline is a whole number
of seconds plus 1/512 after its body began; a queued task may begin when
another's deadline passes, so up to five such offsets add up, never reaching
the 1/64 grid. Async callbacks last a whole number of seconds plus 1/1024, an
odd multiple that no end of a task or of a grace period can share. So no two
things that could race ever fall on the same instant.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import Any

import attrs

from trio_tasks import TaskSignal

# Body operations (tuples, so that Hypothesis prints them readably):
#   ("progress",) ("checkpoint",) ("sleep", s) ("nursery_sleep", s) ("wait", key, timeout | None)
#                   (a nursery_sleep sleeps in a nursery of the body, beside a child sleeping as long)
#   ("until_cancel",)  await handle.cancel_requested(), then yield its own CANCEL
#   ("cleanup", s, raises)  from here on, a trio.Cancelled finds the body needing s seconds of shielded
#                   cleanup, which then raises a ValueError if ``raises``: the task ends FAIL with it
#   ("raise",) ("junk",) ("terminal", TaskSignal, in_a_nursery) ("return",) ("interrupt",)
Op = tuple[Any, ...]

# Outside events: kind is one of "start", "notify", "cancel_wait", "cancel_all",
# "cancel" (with grace), "stop_all" (with grace), "stop_all_twice" (two stop_alls at one instant:
# as one), "stop_chat" (stop_all(chat_key=chat_of(task), grace)), "give_up" (the caller of run_task for the
# task, if it was started that way, is cancelled), "exit", "outer_cancel".

DEADLINE_OFFSET = 1 / 512
CALLBACK_OFFSET = 1 / 1024


@attrs.frozen
class Event:
    time: float
    kind: str
    task: int = -1
    key: str = ""
    grace: int = 0


@attrs.frozen
class Retry:
    attempts: int
    backoff: int
    factor: int
    max_backoff: int

    def delay(self, failed_attempt: int) -> int:
        return min(self.backoff * self.factor ** (failed_attempt - 1), self.max_backoff)


@attrs.frozen
class TaskSetup:
    script: tuple[Op, ...]
    timeout: int | None = None  # whole seconds; the real deadline adds DEADLINE_OFFSET
    callback: int | None = None  # None: a sync callback; n: async, lasting n + CALLBACK_OFFSET seconds
    # Started through trio_tasks.testing.run_task, in a task of the driver: a "give_up" cancels that caller,
    # and the exit cancels every caller still waiting (the driver is cancelled) just before the close begins.
    # A cancelled caller waits for the task's end, so these come only in scenarios without cleanups; nor with
    # a queue, whose next task would begin at the exit's instant, racing the close.
    run_task: bool = False


@attrs.frozen
class WatcherSetup:
    """A ``manager.watch`` subscribed before any start; the model ignores it (the test checks watchers
    against an unbounded eager watcher of every task and against the terminal callbacks)."""

    task: int | None  # None: every task; else the one task tN
    buffer: int | None
    lazy: bool  # reads nothing until the manager has closed


@attrs.frozen
class Scenario:
    tasks: tuple[TaskSetup, ...]
    events: tuple[Event, ...]  # sorted by time
    grace: int = 0  # the manager's grace_period
    limit: int | None = None  # max_concurrent
    on_limit: str = "queue"
    limit_on_type: bool = False  # the limit is the task type's (else the manager's)
    retry: Retry | None = None
    watchers: tuple[WatcherSetup, ...] = ()
    outer_after: float | None = None  # after an "exit": the scope around the manager is cancelled this much later


@attrs.define
class Outcome:
    signal: TaskSignal
    time: float
    why: str = "body"  # what ended it: see WHYS


# What names a task's end: the body itself (its terminal, return or exception), a cancel() of it, a
# stop_all (filtered or not), the manager's close, a cancel from outside the manager (a KeyboardInterrupt
# in another task's body, too: it came from the user), its deadline, a wait point cancelled (cancel_wait,
# cancel_all), the caller of run_task cancelled ("left").
WHYS = ("body", "cancel", "stop_all", "closed", "outside", "timeout", "wait", "left")
_CANCELS = {"cancel", "stop_all", "closed", "outside", "timeout", "left"}  # a trio.Cancelled reaches the body
# A prediction may also be several of them joined by "|": any of them, as Trio's order decides.


@attrs.define
class Prediction:
    outcomes: dict[int, Outcome]  # by task index; rejected and never-started tasks are absent
    rejected: set[int]
    callbacks_finished: set[int]  # async callbacks that run to their end
    interrupted: bool  # a KeyboardInterrupt escapes the manager's block
    outer_cancelled: bool  # the scope around the manager caught the cancellation
    notes: set[str] = attrs.Factory(set)  # which paths the scenario took, for Hypothesis statistics


@attrs.define
class _Task:
    index: int
    setup: TaskSetup
    pc: int = 0
    attempt: int = 1
    queued: bool = False
    began: bool = False
    waiting: str | None = None
    until_cancel: bool = False
    wake_at: float | None = None  # end of a sleep, a wait's timeout or a backoff
    backing_off: bool = False
    deadline: float | None = None
    forced_at: float | None = None  # when a pending grace period runs out
    forced_by: str = ""  # and whose: the first stop that asked names the end
    stops: set[str] = attrs.Factory(set)  # the stops with a grace period in flight ("cancel", "stop_all")
    cleanup: int = 0  # seconds of cleanup a cancel now finds the body to need
    cleanup_raises: bool = False  # and whether that cleanup raises at its end
    releases_at: float | None = None  # ended by a cancel, it holds its slot until its cleanup is over
    generation: int = 0  # the nursery it runs in: a new one after each unfiltered stop_all
    asked: bool = False
    pending: dict[str, Any] = attrs.Factory(dict)
    waits_closed: bool = False
    outcome: Outcome | None = None

    @property
    def script(self) -> Sequence[Op]:
        return self.setup.script

    @property
    def alive(self) -> bool:
        return self.outcome is None

    def next_timer(self) -> tuple[float, str] | None:
        timers = [
            (when, kind)
            for when, kind in ((self.wake_at, "wake"), (self.deadline, "deadline"), (self.forced_at, "forced"))
            if when is not None
        ]
        return min(timers) if timers else None


class _Sim:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.tasks: dict[int, _Task] = {}
        self.queue: list[_Task] = []
        self.rejected: set[int] = set()
        self.interrupted = False
        self.interrupt_cutoff = 0.0  # when the interrupt leaves its nursery (after the cleanups there)
        self.outer_reached = False  # a cancel around the manager came while it was closing
        self.generation = 0
        self.notes: set[str] = set()

    # -- bookkeeping ------------------------------------------------------------------------

    def alive(self) -> list[_Task]:
        return [t for t in self.tasks.values() if t.alive]

    def cleaning(self) -> list[_Task]:
        """Tasks whose end is decided, running their cleanup: still running, holding their slots."""
        return [t for t in self.tasks.values() if t.releases_at is not None]

    def holding_slots(self) -> int:
        return sum(1 for t in self.alive() if not t.queued) + len(self.cleaning())

    def end(self, task: _Task, signal: TaskSignal, now: float, why: str = "body") -> None:
        if task.until_cancel and why in ("cancel", "stop_all", "closed", "left"):
            why = "body"  # the manager's stop asks before it cancels: the body answers with its own CANCEL
        held = task.alive and not task.queued
        cleans = why in _CANCELS and task.cleanup and task.began and not task.queued and not task.backing_off
        if cleans and task.cleanup_raises:  # its error ends it, never retried: a cancel reached the task
            self.notes.add("a cleanup raised")
            signal, why = TaskSignal.FAIL, "body"
        task.outcome = Outcome(signal, now + task.cleanup if cleans else now, why)
        task.waiting = task.wake_at = task.deadline = task.forced_at = None
        task.until_cancel = task.backing_off = False
        if task.queued:
            task.queued = False
            self.queue.remove(task)
        if cleans:  # the first stop named the end; the task runs its cleanup, later stops change nothing
            self.notes.add("a cancelled task ran its cleanup")
            task.releases_at = task.outcome.time
        elif held:
            self.free_slot(now)

    def free_slot(self, now: float) -> None:
        if self.scenario.on_limit == "queue" and self.queue:
            self.notes.add("a queued task began when a slot freed")
            self.begin(self.queue.pop(0), now)

    def cancel_everything(self, now: float, why: str) -> None:
        """Cancel every task at once: queued ones first, so that no slot they free starts one."""
        for task in sorted(self.alive(), key=lambda t: not t.queued):
            self.end(task, TaskSignal.CANCEL, now, why)

    # -- running a body ---------------------------------------------------------------------

    def begin(self, task: _Task, now: float) -> None:
        task.queued = False
        task.began = True
        if task.setup.timeout is not None:
            task.deadline = now + task.setup.timeout + DEADLINE_OFFSET
        self.advance(task, now)

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
            if kind == "cleanup":
                task.cleanup, task.cleanup_raises = op[1], op[2]
                continue
            if kind in ("sleep", "nursery_sleep"):
                task.wake_at = now + op[1]
                return
            if kind == "wait":
                key, timeout = op[1], op[2]
                if task.waits_closed:
                    self.end(task, TaskSignal.CANCEL, now, "wait")
                    return
                if key in task.pending:
                    del task.pending[key]
                    continue
                task.waiting = key
                task.wake_at = None if timeout is None else now + timeout
                return
            if kind == "until_cancel":
                if task.asked:
                    self.notes.add("a body saw its cancel request")
                    self.end(task, TaskSignal.CANCEL, now)
                else:
                    task.until_cancel = True
                return
            if kind == "raise":
                retry = self.scenario.retry
                if retry is not None and task.attempt < retry.attempts and not task.asked:
                    self.notes.add("an attempt was retried")
                    task.backing_off = True
                    task.wake_at = now + retry.delay(task.attempt)
                    task.attempt += 1
                    return
                self.end(task, TaskSignal.FAIL, now)
            elif kind == "junk":
                self.end(task, TaskSignal.FAIL, now)
            elif kind == "terminal":
                self.end(task, op[1], now)
            elif kind == "return":
                self.end(task, TaskSignal.SUCCESS, now)
            elif kind == "interrupt":
                self.end(task, TaskSignal.FAIL, now)
                self.interrupted = True
                self.cancel_everything(now, "outside")
                # It leaves its nursery once every task there has ended; then it cancels the callbacks.
                ends = [t.outcome.time for t in self.tasks.values() if t.generation == task.generation and t.outcome]
                self.interrupt_cutoff = max([now, *ends])
            else:  # pragma: no cover - a generator bug
                raise AssertionError(f"unknown op {op!r}")
            return
        self.end(task, TaskSignal.SUCCESS, now)

    def fire(self, task: _Task, when: float, kind: str) -> None:
        if kind == "deadline":
            self.notes.add("a deadline passed")
            self.end(task, TaskSignal.FAIL, when, "timeout")
        elif kind == "forced":
            self.notes.add("a grace period ran out")
            self.end(task, TaskSignal.CANCEL, when, task.forced_by)
        elif kind == "released":
            task.releases_at = None
            self.free_slot(when)
        elif task.backing_off:
            task.backing_off = False
            task.pc = 0
            task.cleanup, task.cleanup_raises = 0, False  # a new attempt: a new run of the body
            self.advance(task, when)
        else:
            self.advance(task, when)

    def run_timers_until(self, limit: float) -> None:
        while not self.interrupted:
            timers = [(timer, t.index) for t in self.alive() if (timer := t.next_timer()) is not None]
            timers += [((t.releases_at, "released"), t.index) for t in self.cleaning()]  # type: ignore[misc]
            timers = [(timer, index) for timer, index in timers if timer[0] < limit]
            if not timers:
                return
            (when, kind), index = min(timers)
            self.fire(self.tasks[index], when, kind)

    # -- outside events ---------------------------------------------------------------------

    def ask(self, task: _Task, now: float) -> None:
        """A cancel request: is_cancelled turns True and cancel_requested() returns."""
        task.asked = True
        if task.until_cancel:
            self.notes.add("a body saw its cancel request")
            self.end(task, TaskSignal.CANCEL, now)

    def cancel(self, task: _Task, now: float, grace: int, why: str) -> None:
        if not grace or task.queued or task.backing_off:
            self.end(task, TaskSignal.CANCEL, now, why)
            return
        self.ask(task, now)
        if task.alive:
            task.stops.add(why)
            if task.forced_at is None or now + grace < task.forced_at:
                task.forced_at, task.forced_by = now + grace, why

    def start(self, index: int, now: float) -> None:
        limit = self.scenario.limit
        if limit is not None and self.scenario.on_limit == "reject" and self.holding_slots() >= limit:
            self.rejected.add(index)
            self.notes.add("a start was rejected")
            return
        full = limit is not None and self.scenario.on_limit == "queue" and self.holding_slots() >= limit
        task = self.tasks[index] = _Task(index, self.scenario.tasks[index], generation=self.generation)
        if full:
            self.notes.add("a start was queued")
            task.queued = True
            self.queue.append(task)
        else:
            self.begin(task, now)

    def apply(self, event: Event) -> None:
        now = event.time
        task = self.tasks.get(event.task)
        alive = task is not None and task.alive
        if event.kind == "start":
            self.start(event.task, now)
        elif event.kind in ("stop_all", "stop_all_twice", "stop_chat"):
            chat = None if event.kind != "stop_chat" else chat_of(event.task)
            if chat is None:
                self.generation += 1  # later starts go to a new nursery
            for other in sorted(self.alive(), key=lambda t: not t.queued):
                if other.alive and (chat is None or chat_of(other.index) == chat):
                    self.cancel(other, now, event.grace, "stop_all")
        elif not alive:
            return
        else:
            assert task is not None
            if event.kind == "notify":
                if task.waiting == event.key:
                    self.advance(task, now)
                else:
                    task.pending[event.key] = "value"
            elif event.kind == "cancel_wait":
                if task.waiting == event.key:
                    self.end(task, TaskSignal.CANCEL, now, "wait")
            elif event.kind == "cancel_all":
                task.waits_closed = True
                if task.waiting is not None:
                    self.end(task, TaskSignal.CANCEL, now, "wait")
                else:
                    self.ask(task, now)
            elif event.kind == "cancel":
                self.cancel(task, now, event.grace, "cancel")
            elif event.kind == "give_up" and task.setup.run_task:
                self.notes.add("the caller of run_task gave up")
                self.cancel(task, now, 0, "left")

    def exit_callers(self, now: float) -> None:
        """The exit cancels the driver: each caller of run_task still waiting cancels its task, at once (with
        a cancel in flight cut short at the same instant, either names the end), before the close begins."""
        for task in sorted(self.alive(), key=lambda t: not t.queued):
            if task.alive and task.setup.run_task:
                self.notes.add("the exit cancelled a caller of run_task")
                self.end(task, TaskSignal.CANCEL, now, "|".join(sorted({"left", *task.stops})))

    def close(self, now: float) -> float:
        """The manager's block ends at ``now``: returns when async callbacks are cut off. A cancel around
        the manager during the close (``outer_after``) is one from outside: it names the end of the tasks it
        reaches (the close's request with a grace period only asked them) and cuts off the async callbacks."""
        outer_after = self.scenario.outer_after
        outer_at = math.inf if outer_after is None else now + outer_after
        cutoff = self._close(now, outer_at)
        if self.interrupted or outer_at == math.inf:
            return cutoff
        callbacks_end = [
            t.outcome.time + length + CALLBACK_OFFSET
            for t in self.tasks.values()
            if t.outcome is not None and (length := t.setup.callback) is not None
        ]
        if outer_at < max([self.all_ended(now), *(min(end, cutoff) for end in callbacks_end)]):
            self.outer_reached = True  # the close was still going on
            self.notes.add("a cancel around the manager came during its close")
            return min(cutoff, outer_at)
        return cutoff

    def _close(self, now: float, outer_at: float) -> float:
        # The manager cancels tasks with no body running (queued ones first, so that no slot
        # they free starts another) before the slots of the tasks whose grace periods the
        # exit cuts short come free.
        for task in sorted(self.alive(), key=lambda t: not t.queued):
            if task.queued or task.backing_off:
                self.end(task, TaskSignal.CANCEL, now, "closed")
        for task in self.alive():  # the exit cancels the stops in flight: each cancels its tasks at once
            if task.forced_at is not None:  # (in Trio's order, when several: any of them names the end)
                self.end(task, TaskSignal.CANCEL, now, "|".join(sorted(task.stops)))
        grace = self.scenario.grace
        if not grace:
            self.cancel_everything(now, "closed")
            return self.all_ended(now)
        running = self.alive()
        for task in running:
            self.ask(task, now)
        self.run_timers_until(min(now + grace, outer_at))
        if self.interrupted:
            return self.interrupt_cutoff
        if outer_at < now + grace and self.alive():
            self.outer_reached = True
            self.notes.add("a cancel around the manager came during its close")
            self.cancel_everything(outer_at, "outside")
            return outer_at
        if self.alive():
            self.cancel_everything(now + grace, "closed")
        return self.all_ended(now) + grace

    def all_ended(self, now: float) -> float:
        """When the last task ends (cleanups included), not before ``now``: then the callbacks' grace begins."""
        return max([now, *(t.outcome.time for t in self.tasks.values() if t.outcome is not None)])


def predict(scenario: Scenario) -> Prediction:
    """How every started task ends, and what escapes the manager."""
    sim = _Sim(scenario)
    cutoff = None
    ended_by = "exit"
    for event in scenario.events:
        sim.run_timers_until(event.time)
        if sim.interrupted:
            break
        if event.kind == "exit":
            sim.exit_callers(event.time)
            cutoff = sim.close(event.time)
            break
        if event.kind == "outer_cancel":
            ended_by = "outer_cancel"
            sim.cancel_everything(event.time, "outside")
            cutoff = event.time  # (it reaches the async callbacks too, at once)
            break
        sim.apply(event)
        if sim.interrupted:
            break
    outcomes = {i: t.outcome for i, t in sim.tasks.items() if t.outcome is not None}
    assert len(outcomes) == len(sim.tasks), "the model left a task running"
    if sim.interrupted:
        cutoff = sim.interrupt_cutoff
    assert cutoff is not None
    finished = {
        i
        for i, outcome in outcomes.items()
        if (length := scenario.tasks[i].callback) is not None and outcome.time + length + CALLBACK_OFFSET < cutoff
    }
    outer = (ended_by == "outer_cancel" or sim.outer_reached) and not sim.interrupted
    if finished:
        sim.notes.add("an async callback finished")
    if any(t.callback is not None for t in scenario.tasks) and len(finished) < len(outcomes):
        sim.notes.add("an async callback was cut off")
    return Prediction(outcomes, sim.rejected, finished, sim.interrupted, outer, sim.notes)


def chat_of(task: int) -> str:
    """The chat key task ``tN`` is started with: two chats, so that a filtered stop_all picks some of the tasks."""
    return f"chat-{task % 2}"


def phases(count: int) -> list[float]:
    """``count`` distinct fractional phases, exact in binary floating point."""
    assert count < 64
    return [(k + 1) / 64 for k in range(count)]


def order(events: list[Event]) -> tuple[Event, ...]:
    """Sort events by time (times are distinct by construction)."""
    return tuple(heapq.nsmallest(len(events), events, key=lambda e: e.time))
