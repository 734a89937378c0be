"""manager.watch(): every progress and terminal TaskCtl of the watched tasks, in order, never slowing a task."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from task_scripts import Step, numbered, plugin, progress

import trio_tasks._watch
from trio_tasks import (
    AsyncTaskHandle,
    Plugin,
    TaskCtl,
    TaskEvent,
    TaskEvents,
    TaskManager,
    TaskSignal,
    open_task_manager,
)

CHAT = "chat-1"
DONE = TaskCtl.success("done")
GUARD = 1000  # virtual seconds: with autojump_clock, a stream that never ends fails the test instead of hanging it


@attrs.define
class Collector:
    """A watcher reading in a task of its own; ``ended`` is set once its stream has ended."""

    stream: TaskEvents
    events: list[TaskEvent] = attrs.Factory(list)
    ended: trio.Event = attrs.Factory(trio.Event)

    def ctls(self) -> list[tuple[str, TaskCtl]]:
        return [(event.task_id, event.ctl) for event in self.events]


async def collect(
    nursery: trio.Nursery,
    manager: TaskManager,
    task_type: str | None = None,
    task_id: str | None = None,
    *,
    chat_key: str | None = None,
    buffer: int | None = 256,
    hold: trio.Event | None = None,
) -> Collector:
    """Subscribe now; read in a task of ``nursery`` (only once ``hold`` is set, if given) until the stream ends."""
    collector = Collector(manager.watch(task_type, task_id, chat_key=chat_key, buffer=buffer))

    async def read(task_status: trio.TaskStatus[None]) -> None:
        async with collector.stream as events:
            task_status.started()
            if hold is not None:
                await hold.wait()
            with trio.fail_after(GUARD):
                async for event in events:
                    collector.events.append(event)
        collector.ended.set()

    await nursery.start(read)
    return collector


async def read_all(events: TaskEvents) -> list[TaskEvent]:
    """Every event until the stream ends (failing rather than hanging if it never does)."""
    with trio.fail_after(GUARD):
        return [event async for event in events]


def ctls_of(events: list[TaskEvent]) -> list[TaskCtl]:
    return [event.ctl for event in events]


async def start(
    manager: TaskManager, task_id: str, *steps: Step, task_type: str = "script", chat_key: str = CHAT, **options: Any
) -> AsyncTaskHandle:
    return await manager.start(task_type, task_id, chat_key, plugin, *steps, **options)


def notify(manager: TaskManager, task_id: str, task_type: str = "script") -> None:
    handle = manager.get_handle(task_type, task_id)
    assert handle is not None, f"{task_type}:{task_id} is not running"
    handle.notify("go")


def end_time(ends: dict[str, float], task_id: str) -> Callable[[TaskCtl], None]:
    def record(ctl: TaskCtl) -> None:
        ends[task_id] = trio.current_time()

    return record


def spaced(ctls: list[TaskCtl], seconds: float = 1.0) -> list[Step]:
    """Each of ``ctls`` followed by a sleep of ``seconds``."""
    return [step for ctl in ctls for step in (ctl, seconds)]


# -- order and time ----------------------------------------------------------------------------------------


async def test_a_watcher_subscribed_before_start_sees_every_update_in_order_at_its_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_task_manager() as manager:
        await trio.sleep(3)
        async with manager.watch("script", "S") as events:
            t0 = trio.current_time()
            await start(manager, "S", progress("one", 10), 5, progress("two", 50), 2.5, DONE)
            got = await read_all(events)
    assert got == [
        TaskEvent("script", "S", CHAT, progress("one", 10), t0),
        TaskEvent("script", "S", CHAT, progress("two", 50), t0 + 5),
        TaskEvent("script", "S", CHAT, DONE, t0 + 7.5, status="ended"),
    ]


async def test_a_slow_reader_never_slows_the_task(autojump_clock: trio.testing.MockClock) -> None:
    ticks = numbered(10)
    ends: dict[str, float] = {}
    async with open_task_manager() as manager, manager.watch("script", "S", buffer=None) as events:
        t0 = trio.current_time()
        await start(manager, "S", *spaced(ticks), DONE, on_terminal=end_time(ends, "S"))
        got: list[TaskEvent] = []
        with trio.fail_after(GUARD):
            async for event in events:
                got.append(event)
                await trio.sleep(5)  # reads one event every 5 seconds; the task reports one a second
    assert ctls_of(got) == [*ticks, DONE]
    assert [event.at - t0 for event in got] == list(range(11))
    assert ends == {"S": t0 + 10}


inside = Plugin(name="Inside", module_name="inside")


@inside.mount_async_task("scoped")
async def yields_inside_a_cancelled_scope(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
    with trio.CancelScope() as scope:
        scope.cancel()
        yield progress("inside a cancelled scope")  # an await of the runner here would raise Cancelled
    yield DONE


async def test_fan_out_never_awaits_between_two_steps_of_a_body(autojump_clock: trio.testing.MockClock) -> None:
    async with open_task_manager() as manager, manager.watch("scoped", "S") as one, manager.watch() as everything:
        await manager.start("scoped", "S", CHAT, inside)
        assert manager.get_state("scoped", "S") == DONE
        assert ctls_of(await read_all(one)) == [progress("inside a cancelled scope"), DONE]
        assert everything.dropped == 0


# -- filters -------------------------------------------------------------------------------------------------

TASKS = [("script", "1", "c1"), ("script", "2", "c2"), ("other", "1", "c1")]


def events_of(*indexes: int) -> list[tuple[str, str, str, TaskSignal]]:
    """The (type, id, chat, signal) of the progress and terminal events of ``TASKS[index]``, in order."""
    return [(*TASKS[i], signal) for i in indexes for signal in (TaskSignal.PROGRESS, TaskSignal.SUCCESS)]


async def test_filters_pick_the_matching_tasks(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery, open_task_manager() as manager:
        watchers = {
            "all": await collect(nursery, manager),
            "type": await collect(nursery, manager, "script"),
            "type and id": await collect(nursery, manager, "script", "1"),
            "same id, other type": await collect(nursery, manager, "other", "1"),
            "chat": await collect(nursery, manager, chat_key="c1"),
            "type and chat": await collect(nursery, manager, "script", chat_key="c2"),
        }
        for task_type, task_id, chat_key in TASKS:
            await manager.start(task_type, task_id, chat_key, plugin, progress(f"{task_type}:{task_id}"), DONE)
    seen = {
        name: [(e.task_type, e.task_id, e.chat_key, e.ctl.signal) for e in watcher.events]
        for name, watcher in watchers.items()
    }
    assert seen == {
        "all": events_of(0, 1, 2),
        "type": events_of(0, 1),
        "type and id": events_of(0),
        "same id, other type": events_of(2),
        "chat": events_of(0, 2),
        "type and chat": events_of(1),
    }


async def test_a_watch_of_one_task_in_one_chat_follows_its_first_run_in_that_chat(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery, open_task_manager() as manager:
        before = await collect(nursery, manager, "script", "S", chat_key="c2")
        await start(manager, "S", progress("in c1"), "go", DONE, chat_key="c1")
        during = await collect(nursery, manager, "script", "S", chat_key="c1")
        other_chat = await collect(nursery, manager, "script", "S", chat_key="c3")
        notify(manager, "S")
        await trio.testing.wait_all_tasks_blocked()
        assert during.ctls() == [("S", progress("in c1")), ("S", DONE)], "the current state first, then the rest"
        assert during.ended.is_set()
        assert (before.events, before.ended.is_set()) == ([], False), "a run in another chat is not followed"
        await start(manager, "S", progress("in c2"), DONE, chat_key="c2")
        await start(manager, "S", progress("in c2 again"), DONE, chat_key="c2")
        await trio.testing.wait_all_tasks_blocked()
        assert before.ctls() == [("S", progress("in c2")), ("S", DONE)], "its first run in c2, and no later one"
        assert before.ended.is_set()
        assert (other_chat.events, other_chat.ended.is_set()) == ([], False)
    assert other_chat.ended.is_set(), "it ends with the manager"


@pytest.mark.parametrize(
    ("args", "kwargs", "described"),
    [
        (("script", "S"), {}, "script:S"),
        (("script", "S"), {"chat_key": "c1"}, "task_type='script', task_id='S', chat_key='c1'"),
        (("script",), {}, "task_type='script'"),
        ((), {"chat_key": "c1"}, "chat_key='c1'"),
        ((), {}, "all tasks"),
    ],
)
async def test_a_watch_says_what_it_follows(args: tuple[str, ...], kwargs: dict[str, Any], described: str) -> None:
    async with open_task_manager() as manager, manager.watch(*args, **kwargs) as events:
        assert repr(events) == f"<TaskEvents of {described}, 0 waiting, 0 dropped>"


# -- subscribing while tasks run ---------------------------------------------------------------------------


async def test_a_watcher_subscribing_mid_task_gets_the_current_state_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery, open_task_manager() as manager:
        await start(manager, "A", progress("a1"), progress("a2"), "go", progress("a3"), DONE)
        await start(manager, "B", progress("b1"), "go", DONE)
        await start(manager, "C", progress("c1"), "go", DONE, task_type="other")
        broad = await collect(nursery, manager, "script")
        async with manager.watch("script", "A") as events:
            notify(manager, "A")
            one = ctls_of(await read_all(events))
        notify(manager, "B")
        await trio.testing.wait_all_tasks_blocked()
    assert one == [progress("a2"), progress("a3"), DONE]
    assert broad.ctls() == [
        ("A", progress("a2")),
        ("B", progress("b1")),
        ("A", progress("a3")),
        ("A", DONE),
        ("B", DONE),
    ]


async def test_a_queued_task_reports_its_queued_state_as_an_event(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery, open_task_manager() as manager:
        await start(manager, "A", progress("a"), "go", DONE, task_type="single")
        broad = await collect(nursery, manager, "single")
        await start(manager, "B", progress("b"), DONE, task_type="single")
        async with manager.watch("single", "B") as events:  # subscribed while B is queued
            notify(manager, "A", task_type="single")
            seen = await read_all(events)
    one = ctls_of(seen)
    queued, started = one[0], one[1]
    assert queued.signal is TaskSignal.PROGRESS
    assert queued.message.startswith("Queued")
    assert started.signal is TaskSignal.PROGRESS
    assert started.message.startswith("Started")
    assert one[2:] == [progress("b"), DONE]
    assert [event.status for event in seen] == ["queued", "running", "running", "ended"]
    assert broad.ctls() == [
        ("A", progress("a")), ("B", queued), ("A", DONE), ("B", started), ("B", progress("b")), ("B", DONE)
    ]


async def test_retry_backoff_states_are_events(autojump_clock: trio.testing.MockClock) -> None:
    attempts: list[float] = []
    async with open_task_manager() as manager, manager.watch("flaky", "F") as events:
        t0 = trio.current_time()
        await manager.start("flaky", "F", CHAT, plugin, 2, attempts)
        got = await read_all(events)
    assert [(e.ctl.signal, e.ctl.attempt, e.at - t0) for e in got] == [
        (TaskSignal.PROGRESS, 1, 0),  # attempt 1 reports
        (TaskSignal.PROGRESS, 2, 0),  # backing off 1 s
        (TaskSignal.PROGRESS, 2, 1),  # attempt 2 reports
        (TaskSignal.PROGRESS, 3, 1),  # backing off 2 s
        (TaskSignal.PROGRESS, 3, 3),  # attempt 3 reports
        (TaskSignal.SUCCESS, 3, 3),
    ]
    assert [e.ctl.message for e in got[::2]] == ["attempt 1", "attempt 2", "attempt 3"]
    assert "retrying in 1s" in got[1].ctl.message
    assert "retrying in 2s" in got[3].ctl.message


# -- slow watchers: bounded buffers, terminals kept ---------------------------------------------------------

FLOOD = 100_000


@pytest.mark.parametrize("buffer", [1, 256])
async def test_a_watcher_that_never_reads_stays_bounded_and_still_sees_the_terminal(
    autojump_clock: trio.testing.MockClock, buffer: int
) -> None:
    reports = numbered(FLOOD)
    bursts = [step for n in range(0, FLOOD, FLOOD // 10) for step in (*reports[n : n + FLOOD // 10], 1.0)]
    ends: dict[str, float] = {}
    async with open_task_manager() as manager, manager.watch("script", "watched", buffer=buffer) as events:
        t0 = trio.current_time()
        for task_id in ("watched", "unwatched"):
            await start(manager, task_id, *bursts, DONE, on_terminal=end_time(ends, task_id))
        await trio.sleep(60)
        got = ctls_of(await read_all(events))
    assert len(got) == buffer + 1
    assert got == [*reports[-buffer:], DONE], "the oldest progress is dropped, the terminal kept"
    assert events.dropped == FLOOD - buffer
    assert ends == {"watched": t0 + 10, "unwatched": t0 + 10}


@pytest.mark.parametrize(("options", "kept"), [({}, 256), ({"buffer": None}, 1000), ({"buffer": 1000}, 1000)])
async def test_buffer_defaults_to_256_and_none_keeps_everything(
    autojump_clock: trio.testing.MockClock, options: dict[str, Any], kept: int
) -> None:
    reports = numbered(1000)
    async with open_task_manager() as manager, manager.watch("script", "S", **options) as events:
        await start(manager, "S", *reports, DONE)  # no checkpoint: nobody could read in between
        got = ctls_of(await read_all(events))
    assert got == [*reports[-kept:], DONE]
    assert events.dropped == 1000 - kept


async def test_terminal_events_are_never_dropped(autojump_clock: trio.testing.MockClock) -> None:
    endings = [DONE, TaskCtl.fail("broke"), TaskCtl.cancel("gave up"), DONE, TaskCtl.fail("again")]
    reports = numbered(3)
    hold = trio.Event()
    async with trio.open_nursery() as nursery, open_task_manager() as manager:
        watcher = await collect(nursery, manager, buffer=1, hold=hold)
        for n, ending in enumerate(endings):
            await start(manager, f"T{n}", *reports, ending)
        hold.set()
    assert watcher.ctls() == [
        *[(f"T{n}", ending) for n, ending in enumerate(endings[:-1])],
        ("T4", reports[-1]),
        ("T4", endings[-1]),
    ]
    assert watcher.stream.dropped == len(endings) * len(reports) - 1


def lines_run_in_watch_module(counts: list[int]) -> Callable[[Any, str, Any], Any]:
    """A ``sys.settrace`` tracer counting the lines run in trio_tasks/_watch.py (a measure of work, not of time)."""
    watch_module = trio_tasks._watch.__file__

    def local(frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            counts[0] += 1
        return local

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename == watch_module else None

    return tracer


@pytest.mark.parametrize("unread", [0, 300])
async def test_unread_terminal_events_in_front_do_not_make_a_drop_dearer(
    autojump_clock: trio.testing.MockClock, unread: int
) -> None:
    """A full buffer drops the oldest progress event behind the terminals in front of it at the same cost
    however many there are: each is passed over once, not at every drop (a slow dashboard must not slow
    every task). The work is counted in lines run, and the events still come in order."""
    reports = numbered(200)
    async with open_task_manager(history_limit=0) as manager, manager.watch(buffer=1) as events:
        for n in range(unread):
            await start(manager, f"S{n}", progress("short"), DONE)
        counts = [0]
        sys.settrace(lines_run_in_watch_module(counts))
        try:
            await start(manager, "busy", *reports, DONE)  # no checkpoint between the reports
        finally:
            sys.settrace(None)
        with trio.fail_after(GUARD):  # (the stream goes on: the manager is open)
            read = [await anext(events) for _ in range(unread + 2)]
        got = [(event.task_id, event.ctl) for event in read]
    assert got == [*((f"S{n}", DONE) for n in range(unread)), ("busy", reports[-1]), ("busy", DONE)]
    assert events.dropped == unread + len(reports) - 1
    per_report = 10  # lines of _watch.py per report and its drop (7 now), with room to spare
    assert counts[0] <= per_report * len(reports) + 2 * unread, "each terminal in front is passed over once"


# -- leaving and ending ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("leave", ["break", "cancel"])
async def test_leaving_the_block_mid_burst_unsubscribes(autojump_clock: trio.testing.MockClock, leave: str) -> None:
    ticks = numbered(200)
    ends: dict[str, float] = {}
    seen: list[TaskCtl] = []
    async with open_task_manager() as manager:
        t0 = trio.current_time()
        with trio.move_on_after(4.5 if leave == "cancel" else math.inf):
            async with manager.watch("script", "T", buffer=10) as events:
                await start(manager, "T", *spaced(ticks), DONE, on_terminal=end_time(ends, "T"))
                async for event in events:
                    seen.append(event.ctl)
                    if leave == "break" and len(seen) == 5:
                        break
        assert seen == ticks[:5]
        assert manager.is_running("script", "T")
        await trio.sleep(300)
        assert events.dropped == 0, "195 more updates came after it left; none reached it"
        assert manager.get_state("script", "T") == DONE
        assert ends == {"T": t0 + 200}
        async with manager.watch("script", "T", buffer=None) as again:
            await start(manager, "T", *spaced(ticks), DONE)
            assert ctls_of(await read_all(again)) == [*ticks, DONE]


@pytest.mark.parametrize("how", ["notify", "cancel", "stop_all", "cancel_wait"])
async def test_a_watcher_of_one_task_ends_after_its_terminal(autojump_clock: trio.testing.MockClock, how: str) -> None:
    async with open_task_manager() as manager:
        handle = await start(manager, "S", progress("waiting"), "go", DONE)
        async with manager.watch("script", "S") as events:
            if how == "notify":
                handle.notify("go")
            elif how == "cancel":
                await manager.cancel("script", "S")
            elif how == "stop_all":
                await manager.stop_all(chat_key=CHAT)
            else:
                handle.cancel_wait("go")
            got = ctls_of(await read_all(events))
        terminal = manager.get_state("script", "S")
        await start(manager, "S", progress("again"), DONE)
    assert terminal is not None
    assert terminal.signal is (TaskSignal.SUCCESS if how == "notify" else TaskSignal.CANCEL)
    assert got == [progress("waiting"), terminal]


async def test_other_watchers_end_when_the_manager_closes_after_the_last_terminal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        async with open_task_manager() as manager:
            watchers = [
                await collect(nursery, manager),
                await collect(nursery, manager, "script"),
                await collect(nursery, manager, chat_key=CHAT),
            ]
            never_started = await collect(nursery, manager, "script", "never")
            await start(manager, "S", progress("working"), "go")
            await trio.sleep(10)
            assert not any(watcher.ended.is_set() for watcher in [*watchers, never_started])
        with trio.fail_after(10):
            for watcher in [*watchers, never_started]:
                await watcher.ended.wait()
        terminal = manager.get_state("script", "S")
        async with manager.watch() as late:
            assert await read_all(late) == [], "a watch of a closed manager ends at once"
    assert terminal is not None
    assert terminal.signal is TaskSignal.CANCEL
    assert all(watcher.ctls() == [("S", progress("working")), ("S", terminal)] for watcher in watchers)
    assert never_started.events == []


async def test_many_watchers_of_one_task_each_get_every_event(autojump_clock: trio.testing.MockClock) -> None:
    ticks = numbered(20)
    async with trio.open_nursery() as nursery, open_task_manager() as manager:
        watchers = [await collect(nursery, manager, "script", "S") for _ in range(10)]
        watchers += [await collect(nursery, manager, "script") for _ in range(5)]
        watchers += [await collect(nursery, manager, chat_key=CHAT, buffer=None) for _ in range(5)]
        await start(manager, "S", *spaced(ticks, 0), DONE)
        await trio.testing.wait_all_tasks_blocked()
    first = watchers[0].events
    assert [event.ctl for event in first] == [*ticks, DONE]
    assert all(watcher.events == first for watcher in watchers)


async def test_watchers_of_one_task_that_leave_one_by_one_get_nothing_more_and_the_others_go_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    p1, p2, p3 = numbered(3)
    async with open_task_manager() as manager:
        streams = {name: manager.watch("script", "T") for name in "ABC"}
        streams["D"] = manager.watch(chat_key=CHAT)
        streams["E"], streams["F"] = manager.watch("script", "U"), manager.watch("script", "U")
        for stream in streams.values():
            await stream.__aenter__()
        await streams["A"].__aexit__(None, None, None)  # before T starts: two of its three watches are left
        await streams["E"].__aexit__(None, None, None)  # before U starts: one of its two
        t0 = trio.current_time()
        await start(manager, "T", p1, 1.0, p2, 1.0, p3, 1.0, DONE)
        await start(manager, "U", p1, DONE)
        await trio.sleep_until(t0 + 0.5)
        await streams["B"].__aexit__(None, None, None)
        await trio.sleep_until(t0 + 1.5)
        await streams["D"].__aexit__(None, None, None)  # C is T's only watcher from here on
        await trio.sleep(10)
        got = {name: [(e.task_id, e.ctl) for e in await read_all(stream)] for name, stream in streams.items()}
        await streams["C"].__aexit__(None, None, None)
        await streams["F"].__aexit__(None, None, None)
    assert got == {
        "A": [],
        "B": [("T", p1)],
        "C": [("T", p1), ("T", p2), ("T", p3), ("T", DONE)],
        "D": [("T", p1), ("U", p1), ("U", DONE), ("T", p2)],
        "E": [],
        "F": [("U", p1), ("U", DONE)],
    }

@pytest.mark.parametrize("watched", [("script", "S"), ("script",)], ids=["one task", "a type"])
async def test_readers_sharing_a_stream_each_take_other_events_and_end_only_with_it(
    autojump_clock: trio.testing.MockClock, watched: tuple[str, ...]
) -> None:
    reads: list[TaskCtl] = []
    running_at_end: list[bool] = []  # per reader whose stream ended: was the task still running?
    async with open_task_manager() as manager, manager.watch(*watched) as events, trio.open_nursery() as readers:

        async def reader() -> None:
            async for event in events:
                reads.append(event.ctl)  # noqa: PERF401 - as it arrives: the test looks before the stream ends
            running_at_end.append(manager.is_running("script", "S"))

        await start(manager, "S", progress("one"), "go", progress("two"), DONE)  # "one" waits unread
        readers.start_soon(reader)
        readers.start_soon(reader)  # both readers wake for "one": only one of them gets it
        await trio.sleep(5)
        assert (reads, running_at_end) == ([progress("one")], []), "the other reader waits on"
        notify(manager, "S")
        await trio.testing.wait_all_tasks_blocked()
        assert reads == [progress("one"), progress("two"), DONE]
        if len(watched) == 2:
            assert running_at_end == [False, False], "a watch of one task ends after its terminal"
        else:
            assert running_at_end == [], "a broad watch ends only with the manager"
            readers.cancel_scope.cancel()


# -- bad arguments ------------------------------------------------------------------------------------------------


async def enter(manager: TaskManager, *args: Any, **kwargs: Any) -> None:
    async with manager.watch(*args, **kwargs):
        pass


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((None, "T1"), {}, TypeError, "task_type"),
        ((), {"task_id": "T1"}, TypeError, "task_type"),
        ((42,), {}, TypeError, "task_type.*42"),
        (("script", 7), {}, TypeError, "task_id.*7"),
        ((), {"chat_key": b"c1"}, TypeError, re.escape("chat_key") + ".*" + re.escape("b'c1'")),
        ((), {"buffer": 0}, ValueError, "buffer.*got 0"),
        ((), {"buffer": -1}, ValueError, "buffer.*-1"),
        ((), {"buffer": True}, TypeError, "buffer.*True"),
        ((), {"buffer": 2.5}, TypeError, "buffer.*2.5"),
    ],
)
async def test_bad_arguments_are_refused_naming_the_value(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    async with open_task_manager() as manager:
        with pytest.raises(error, match=match):
            await enter(manager, *args, **kwargs)


@pytest.mark.parametrize("broad", [False, True])
async def test_a_stream_read_before_it_is_entered_is_refused_rather_than_waiting_for_ever(broad: bool) -> None:
    async with open_task_manager() as manager:
        stream = manager.watch("script") if broad else manager.watch("script", "A")
        with pytest.raises(RuntimeError, match=r"read before it is entered: use it as `async with manager\.watch"):
            async for _ in stream:
                pass


async def test_a_stream_entered_twice_is_refused_and_still_gets_each_event_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_task_manager() as manager, manager.watch("script", "A", buffer=None) as stream:
        with pytest.raises(RuntimeError, match=r"TaskEvents of script:A.*was entered already"):
            async with stream:
                pass  # pragma: no cover
        await start(manager, "A", progress("one"), DONE)
        read = [event.ctl async for event in stream]
    assert read == [progress("one"), DONE]
