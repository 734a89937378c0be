"""manager.list_tasks(): what the manager knows of each running, queued and recently ended task."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from task_scripts import Step, plugin, progress, script

from trio_tasks import AsyncTaskHandle, Plugin, TaskCtl, TaskInfo, TaskManager, TaskSignal, open_task_manager

CHAT = "chat-1"
DONE = TaskCtl.success("done")

other_plugin = Plugin(name="Other", module_name="other")
other_plugin.mount_async_task("script")(script)


async def start(
    manager: TaskManager,
    task_id: str,
    *steps: Step,
    task_type: str = "script",
    chat_key: str = CHAT,
    owner: Plugin = plugin,
    **options: Any,
) -> AsyncTaskHandle:
    return await manager.start(task_type, task_id, chat_key, owner, *steps, **options)


def listed(manager: TaskManager, **filters: Any) -> list[tuple[str, str]]:
    """The listed tasks as (task_id, status), in listing order."""
    return [(info.task_id, info.status) for info in manager.list_tasks(**filters)]


async def test_a_task_is_listed_running_then_ended_with_its_virtual_times(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_task_manager() as manager:
        await trio.sleep(5)
        t0 = trio.current_time()
        handle = await start(manager, "R", progress("working", 30), "go", DONE)
        await trio.sleep(7)
        running = TaskInfo("script", "R", CHAT, "Scripts", progress("working", 30), "running", t0, None, 7.0)
        assert manager.list_tasks() == [running]
        handle.notify("go")
        await trio.sleep(3)
        ended = TaskInfo("script", "R", CHAT, "Scripts", DONE, "ended", t0, t0 + 7, 7.0)
        assert manager.list_tasks() == [ended]
        await trio.sleep(100)
        assert manager.list_tasks() == [ended], "an ended task's elapsed time no longer grows"


async def test_a_task_that_has_reported_nothing_has_no_state() -> None:
    async with open_task_manager() as manager:
        await start(manager, "R", "go")
        [info] = manager.list_tasks()
        assert (info.status, info.state, info.ended_at) == ("running", None, None)


async def test_a_cancelled_task_is_listed_ended_with_its_cancel(autojump_clock: trio.testing.MockClock) -> None:
    async with open_task_manager() as manager:
        t0 = trio.current_time()
        await start(manager, "R", progress("working"), "go")
        await trio.sleep(4)
        await manager.cancel("script", "R")
        [info] = manager.list_tasks()
        assert info.state == manager.get_state("script", "R")
    assert (info.status, info.ended_at, info.elapsed) == ("ended", t0 + 4, 4)
    assert info.state is not None
    assert info.state.signal is TaskSignal.CANCEL


async def test_a_queued_task_is_listed_as_queued_until_a_slot_frees(autojump_clock: trio.testing.MockClock) -> None:
    async with open_task_manager() as manager:
        t0 = trio.current_time()
        first = await start(manager, "A", progress("a"), "go", DONE, task_type="single")
        await trio.sleep(2)
        await start(manager, "B", progress("b"), "go", task_type="single")
        await trio.sleep(3)
        a, b = manager.list_tasks()
        assert (a.task_id, a.status, a.state, a.started_at, a.elapsed) == ("A", "running", progress("a"), t0, 5)
        assert (b.task_id, b.status, b.started_at, b.elapsed) == ("B", "queued", t0 + 2, 3), "counted from the start"
        assert b.state is not None
        assert b.state.signal is TaskSignal.PROGRESS
        assert b.state.message.startswith("Queued")
        first.notify("go")
        await trio.sleep(1)
        b, a = manager.list_tasks()
        assert (b.task_id, b.status, b.state, b.started_at, b.elapsed) == ("B", "running", progress("b"), t0 + 2, 4)
        assert (a.task_id, a.status, a.state, a.ended_at, a.elapsed) == ("A", "ended", DONE, t0 + 5, 5)


async def test_a_task_backing_off_between_retries_is_running(autojump_clock: trio.testing.MockClock) -> None:
    async with open_task_manager() as manager:
        await manager.start("flaky", "F", CHAT, plugin, 1, [])
        [info] = manager.list_tasks()
        assert info.status == "running"
        assert info.state is not None
        assert "retrying in 1s" in info.state.message
        await trio.sleep(1.5)  # not 1: the backoff ends then, and which of two sleepers wakes first is random
        [info] = manager.list_tasks()
        assert (info.status, info.state) == ("ended", TaskCtl(TaskSignal.SUCCESS, "done on attempt 2", attempt=2))


async def test_running_tasks_come_first_in_start_order_then_ended_ones_oldest_first() -> None:
    async with open_task_manager() as manager:
        handles = {task_id: await start(manager, task_id, "go") for task_id in "ABCD"}
        for task_id in "CA":
            handles[task_id].notify("go")
            await trio.testing.wait_all_tasks_blocked()
        assert listed(manager) == [("B", "running"), ("D", "running"), ("C", "ended"), ("A", "ended")]


OWNERS = {"1": "Scripts", "2": "Scripts", "3": "Other", "4": "Scripts"}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["1", "2", "3", "4"]),
        ({"plugin": plugin}, ["1", "2", "4"]),
        ({"plugin": other_plugin}, ["3"]),
        ({"task_type": "script"}, ["1", "3", "4"]),
        ({"chat_key": "c2"}, ["2", "3"]),
        ({"plugin": plugin, "task_type": "script", "chat_key": "c1"}, ["1", "4"]),
        ({"task_type": "single"}, []),
    ],
)
async def test_filters_pick_running_and_ended_tasks(filters: dict[str, Any], expected: list[str]) -> None:
    async with open_task_manager() as manager:
        await start(manager, "1", "go", chat_key="c1")
        await start(manager, "2", "go", task_type="other", chat_key="c2")
        await start(manager, "3", "go", chat_key="c2", owner=other_plugin)
        await start(manager, "4", DONE, chat_key="c1")
        infos = manager.list_tasks(**filters)
    assert [(info.task_id, info.plugin_name) for info in infos] == [(task_id, OWNERS[task_id]) for task_id in expected]


async def test_the_history_is_bounded_and_a_rerun_becomes_its_newest_entry() -> None:
    async with open_task_manager(history_limit=3) as manager:
        await start(manager, "R", "go")
        for n in range(5):
            await start(manager, f"T{n}", DONE)
        assert listed(manager) == [("R", "running"), ("T2", "ended"), ("T3", "ended"), ("T4", "ended")]
        await start(manager, "T2", DONE)
        assert listed(manager) == [("R", "running"), ("T3", "ended"), ("T4", "ended"), ("T2", "ended")]


async def test_a_task_running_again_is_listed_once_as_running() -> None:
    async with open_task_manager() as manager:
        await start(manager, "A", progress("first run"), DONE)
        handle = await start(manager, "A", progress("second run"), "go", DONE)
        assert listed(manager) == [("A", "running")], "its earlier run is not listed beside it"
        assert manager.list_tasks()[0].state == manager.get_state("script", "A") == progress("second run")
        handle.notify("go")
        await trio.testing.wait_all_tasks_blocked()
        assert listed(manager) == [("A", "ended")]


async def test_a_chats_listing_keeps_its_ended_run_while_the_task_runs_again_elsewhere() -> None:
    async with open_task_manager() as manager:
        await start(manager, "J", DONE, chat_key="chat-1")
        await start(manager, "J", "go", chat_key="chat-2")
        assert listed(manager, chat_key="chat-1") == [("J", "ended")]
        assert listed(manager, chat_key="chat-2") == [("J", "running")]
        assert listed(manager) == [("J", "running")]


def test_the_listing_can_be_read_after_trio_run_has_returned() -> None:
    async def main() -> TaskManager:
        async with open_task_manager() as manager:
            await start(manager, "A", progress("working"), DONE)
        return manager

    manager = trio.run(main)
    [info] = manager.list_tasks()
    assert (info.task_id, info.status, info.state) == ("A", "ended", DONE)
    assert info.elapsed == info.ended_at - info.started_at  # type: ignore[operator]


async def test_without_history_only_running_tasks_are_listed() -> None:
    async with open_task_manager(history_limit=0) as manager:
        await start(manager, "R", "go")
        await start(manager, "T", DONE)
        assert listed(manager) == [("R", "running")]


@pytest.mark.parametrize(
    ("filters", "match"),
    [({"task_type": 3}, "task_type.*3"), ({"chat_key": b"c1"}, "chat_key.*b'c1'"), ({"plugin": "Scripts"}, "Scripts")],
)
async def test_bad_filters_are_refused_naming_the_value(filters: dict[str, Any], match: str) -> None:
    async with open_task_manager() as manager:
        with pytest.raises(TypeError, match=match):
            manager.list_tasks(**filters)
