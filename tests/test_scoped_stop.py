"""Scoped stop and listing: ``stop_all`` and ``get_running_tasks`` filtered by plugin, task_type and chat_key.

Every test runs the same five tasks of two plugins (the ``render`` type is mounted on both), all parked until
cancelled, and checks which of them a filter picks.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from trio_tasks import AsyncTaskHandle, Plugin, TaskCtl, TaskManager, TaskSignal, open_task_manager, task

video = Plugin(name="Video", module_name="video")
search = Plugin(name="Search", module_name="search")


async def parked(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
    yield TaskCtl.report_progress("working", 10)
    await trio.sleep_forever()


async def cooperative(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
    yield TaskCtl.report_progress("working", 10)
    await handle.cancel_requested()
    await trio.sleep(1)
    yield TaskCtl.cancel("Stopped cleanly")


video.mount_async_task("render")(parked)
video.mount_async_task("fetch")(parked)
search.mount_async_task("render")(parked)
search.mount_async_task("index")(cooperative)

# (plugin, task_type, task_id, chat_key), in start order.
TASKS = [
    (video, "render", "R1", "chat-1"),
    (video, "render", "R2", "chat-2"),
    (video, "fetch", "F1", "chat-1"),
    (search, "render", "R3", "chat-1"),
    (search, "index", "I1", "chat-2"),
]
ALL = [f"{task_type}:{task_id}" for _, task_type, task_id, _ in TASKS]

FILTERS: list[tuple[dict[str, Any], list[str]]] = [
    ({}, ALL),
    ({"plugin": video}, ["render:R1", "render:R2", "fetch:F1"]),
    ({"plugin": search}, ["render:R3", "index:I1"]),
    ({"task_type": "render"}, ["render:R1", "render:R2", "render:R3"]),
    ({"chat_key": "chat-1"}, ["render:R1", "fetch:F1", "render:R3"]),
    ({"plugin": video, "chat_key": "chat-1"}, ["render:R1", "fetch:F1"]),
    ({"plugin": search, "task_type": "render"}, ["render:R3"]),
    ({"task_type": "render", "chat_key": "chat-2"}, ["render:R2"]),
    ({"plugin": video, "task_type": "render", "chat_key": "chat-1"}, ["render:R1"]),
    ({"plugin": search, "task_type": "fetch"}, []),
    ({"task_type": "missing"}, []),
    ({"chat_key": "chat-3"}, []),
]
FILTER_IDS = [",".join(f"{k}={getattr(v, 'name', v)}" for k, v in where.items()) or "none" for where, _ in FILTERS]


@attrs.define
class Running:
    """The five tasks, started on one manager, with the terminal callbacks each received."""

    manager: TaskManager
    endings: dict[str, list[TaskCtl]] = attrs.Factory(dict)

    async def start_all(self) -> None:
        for plugin, task_type, task_id, chat_key in TASKS:
            ends = self.endings[f"{task_type}:{task_id}"] = []
            await self.manager.start(task_type, task_id, chat_key, plugin, on_terminal=ends.append)

    def ended(self) -> list[str]:
        return [name for name, ends in self.endings.items() if ends]

    def only(self, name: str) -> TaskCtl:
        ends = self.endings[name]
        assert len(ends) == 1, (name, ends)
        return ends[0]


async def running(manager: TaskManager) -> Running:
    tasks = Running(manager)
    await tasks.start_all()
    return tasks


@pytest.mark.parametrize(("where", "expected"), FILTERS, ids=FILTER_IDS)
async def test_get_running_tasks_filters(where: dict[str, Any], expected: list[str]) -> None:
    async with open_task_manager() as manager:
        await running(manager)
        assert manager.get_running_tasks(**where) == expected
        assert task.get_running_tasks(**where) == expected


@pytest.mark.parametrize(("where", "expected"), FILTERS, ids=FILTER_IDS)
async def test_stop_all_stops_exactly_the_matching_tasks(where: dict[str, Any], expected: list[str]) -> None:
    async with open_task_manager() as manager:
        tasks = await running(manager)
        assert await manager.stop_all(**where) == len(expected)
        assert tasks.ended() == expected, "stop_all returns after the stopped tasks' callbacks ran"
        for name in expected:
            if name != "index:I1":
                assert tasks.only(name) == TaskCtl.cancel("Cancelled by stop_all()")
        survivors = [name for name in ALL if name not in expected]
        assert manager.get_running_tasks() == survivors
        assert await manager.stop_all(**where) == 0, "nothing left to stop"
    assert all(len(ends) == 1 for ends in tasks.endings.values())


async def test_a_filtered_stop_all_with_grace_lets_cooperative_tasks_finish(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_task_manager() as manager:
        tasks = await running(manager)
        t0 = trio.current_time()
        assert await manager.stop_all(plugin=search, grace=10) == 2
        assert trio.current_time() == t0 + 10, "render:R3 ignores the request and gets the whole grace"
        assert manager.get_running_tasks() == ["render:R1", "render:R2", "fetch:F1"]
    assert tasks.only("index:I1") == TaskCtl.cancel("Stopped cleanly")
    assert tasks.only("render:R3") == TaskCtl.cancel("Cancelled by stop_all()")


async def test_a_filtered_stop_all_does_not_ask_other_tasks_to_stop(autojump_clock: trio.testing.MockClock) -> None:
    async with open_task_manager() as manager:
        await running(manager)
        await manager.stop_all(task_type="render", grace=0.5)
        for name in ("fetch:F1", "index:I1"):
            task_type, task_id = name.split(":")
            handle = manager.get_handle(task_type, task_id)
            assert handle is not None
            assert not handle.is_cancelled


# -- plugin.disable() ---------------------------------------------------------------------------------------


async def test_disabling_a_plugin_stops_only_its_own_tasks() -> None:
    plugin = Plugin(name="Own", module_name="own")
    plugin.mount_async_task("render")(parked)
    plugin.mount_async_task("export")(parked)
    stopped: list[int] = []

    @plugin.on_disabled()
    async def cleanup() -> None:
        stopped.append(await task.stop_all(plugin=plugin))

    async with open_task_manager() as manager:
        tasks = await running(manager)
        own: list[TaskCtl] = []
        await manager.start("render", "O1", "chat-1", plugin, on_terminal=own.append)
        await manager.start("export", "O2", "chat-2", plugin, on_terminal=own.append)
        await plugin.disable()
        assert stopped == [2]
        assert own == [TaskCtl.cancel("Cancelled by stop_all()")] * 2
        assert manager.get_running_tasks() == ALL, "the other plugins' tasks run on"
        assert tasks.ended() == []
    assert [tasks.only(name).signal for name in ALL if name != "index:I1"] == [TaskSignal.CANCEL] * 4


# -- bad values -------------------------------------------------------------------------------------------------


BAD_FILTERS: list[dict[str, Any]] = [
    {"task_type": 1},
    {"task_type": b"render"},
    {"chat_key": 7},
    {"chat_key": ["chat-1"]},
    {"plugin": "Video"},
    {"plugin": video.name},
    {"plugin": object()},
]


@pytest.mark.parametrize("where", BAD_FILTERS)
async def test_bad_filter_values_are_refused(where: dict[str, Any]) -> None:
    [(name, value)] = where.items()
    async with open_task_manager() as manager:
        await running(manager)
        with pytest.raises(TypeError, match=name) as listing:
            manager.get_running_tasks(**where)
        assert repr(value) in str(listing.value)
        with pytest.raises(TypeError, match=name) as stopping:
            await manager.stop_all(**where)
        assert repr(value) in str(stopping.value)
        assert manager.get_running_tasks() == ALL, "a refused stop_all stopped nothing"


@pytest.mark.parametrize(
    ("grace", "error"),
    [(-1, ValueError), (-0.5, ValueError), (math.nan, ValueError), (math.inf, ValueError), ("5", TypeError)],
)
@pytest.mark.parametrize("where", [{}, {"plugin": video}], ids=["everything", "filtered"])
async def test_bad_grace_is_refused(grace: object, error: type[Exception], where: dict[str, Any]) -> None:
    async with open_task_manager() as manager:
        await running(manager)
        with pytest.raises(error, match="grace") as caught:
            await manager.stop_all(grace=grace, **where)  # type: ignore[arg-type]
        assert repr(grace) in str(caught.value)
        assert manager.get_running_tasks() == ALL
