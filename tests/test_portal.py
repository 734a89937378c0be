"""TaskPortal: the manager's API from other threads, each call blocking until Trio has done it.

These tests use real threads, so they run on Trio's real clock; no body sleeps (they wait on wait points), and
``trio.fail_after`` only guards against a hang.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
import trio
import trio.testing

from trio_tasks import (
    AsyncTaskHandle,
    ManagerClosed,
    Plugin,
    TaskAlreadyRunning,
    TaskCtl,
    TaskPortal,
    TaskSignal,
    UnknownTaskType,
    open_task_manager,
)

T = TypeVar("T")

plugin = Plugin(name="Portal", module_name="portal")


@plugin.mount_async_task("approval")
async def approval(handle: AsyncTaskHandle, prompt: str = "?") -> AsyncIterator[TaskCtl]:
    yield TaskCtl.report_progress(f"waiting: {prompt}", 50)
    answer = await handle.wait("go")
    yield TaskCtl.success("notified", data=answer)


def in_threads(target: Callable[[int], T], count: int) -> list[T]:
    """Run ``target(0)`` ... ``target(count - 1)`` in plain threads at once; their results, or the first error."""
    results: list[Any] = [None] * count
    errors: list[BaseException] = []
    barrier = threading.Barrier(count, timeout=10)

    def run(n: int) -> None:
        try:
            barrier.wait()
            results[n] = target(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


async def in_a_thread(call: Callable[..., T], *args: Any) -> T:
    """Run ``call(*args)`` in a worker thread; fail rather than hang."""
    with trio.fail_after(10):
        return await trio.to_thread.run_sync(call, *args, abandon_on_cancel=True)


# -- many threads at once ------------------------------------------------------------------------------------

THREADS = 8
PER_THREAD = 25


async def test_eight_threads_start_and_notify_many_tasks() -> None:
    endings: dict[str, list[TaskCtl]] = {}
    callback_threads: set[int] = set()
    all_ended = trio.Event()

    def record(task_id: str, ctl: TaskCtl) -> None:
        endings.setdefault(task_id, []).append(ctl)
        callback_threads.add(threading.get_ident())
        if sum(map(len, endings.values())) == THREADS * PER_THREAD:
            all_ended.set()

    async with open_task_manager() as manager:
        portal = manager.portal()

        def client(n: int) -> list[bool]:
            ids = [f"{n}-{i}" for i in range(PER_THREAD)]
            for task_id in ids:
                on_terminal = functools.partial(record, task_id)
                handle = portal.start("approval", task_id, f"chat-{n}", plugin, on_terminal=on_terminal)
                assert (handle.task_id, handle.chat_key) == (task_id, f"chat-{n}")
            return [portal.notify("approval", task_id, "go", (n, i)) for i, task_id in enumerate(ids)]

        notified = await in_a_thread(in_threads, client, THREADS)
        with trio.fail_after(10):
            await all_ended.wait()
        assert manager.get_running_tasks() == []
    assert notified == [[True] * PER_THREAD] * THREADS, "each body was already waiting when start returned"
    assert endings == {
        f"{n}-{i}": [TaskCtl.success("notified", data=(n, i))] for n in range(THREADS) for i in range(PER_THREAD)
    }
    assert callback_threads == {threading.get_ident()}, "on_terminal runs in the Trio thread"


# -- the manager's API from a thread ---------------------------------------------------------------------------


async def test_a_thread_sees_what_runs() -> None:
    async with open_task_manager() as manager:
        portal = manager.portal()

        def client() -> None:
            handle = portal.start("approval", "A", "chat-1", plugin, prompt="Deploy?")
            assert handle.task_type == "approval"
            portal.start("approval", "B", "chat-2", plugin)
            assert portal.is_running("approval", "A")
            assert not portal.is_running("approval", "Z")
            assert portal.get_running_tasks() == ["approval:A", "approval:B"]
            assert portal.get_running_tasks(chat_key="chat-2") == ["approval:B"]
            assert portal.get_running_tasks(plugin=plugin, task_type="other") == []
            assert portal.get_state("approval", "A") == TaskCtl.report_progress("waiting: Deploy?", 50)
            assert portal.get_state("approval", "Z") is None

        await in_a_thread(client)
        await manager.stop_all()


async def test_a_thread_cancels_and_stops_tasks() -> None:
    async with open_task_manager() as manager:
        portal = manager.portal()
        for task_id, chat_key in [("A", "chat-1"), ("B", "chat-1"), ("C", "chat-2"), ("D", "chat-2")]:
            await manager.start("approval", task_id, chat_key, plugin)

        def client() -> list[object]:
            cancelled = portal.cancel("approval", "A")
            after_cancel = (portal.is_running("approval", "A"), portal.get_state("approval", "A"))
            return [
                cancelled,
                after_cancel,
                portal.cancel("approval", "A"),
                portal.stop_all(chat_key="chat-1"),
                portal.get_running_tasks(),
                portal.stop_all(),
                portal.get_running_tasks(),
            ]

        result = await in_a_thread(client)
    assert result == [
        True,
        (False, TaskCtl.cancel("Cancelled by cancel()")),  # cancel returned once the task had ended
        False,
        1,
        ["approval:C", "approval:D"],
        2,
        [],
    ]


async def test_a_thread_reaches_wait_points() -> None:
    async with open_task_manager() as manager:
        portal = manager.portal()
        for task_id in "AB":
            await manager.start("approval", task_id, "chat", plugin)

        def client() -> list[bool]:
            return [
                portal.cancel_wait("approval", "A", "other"),
                portal.cancel_wait("approval", "A", "go"),
                portal.notify("approval", "B", "go", {"ok": True}),
                portal.notify("approval", "Z", "go"),
                portal.cancel_wait("approval", "Z", "go"),
            ]

        assert await in_a_thread(client) == [False, True, True, False, False]
        await trio.testing.wait_all_tasks_blocked()
        a, b = manager.get_state("approval", "A"), manager.get_state("approval", "B")
    assert a is not None
    assert a.signal is TaskSignal.CANCEL
    assert "go" in a.message
    assert b == TaskCtl.success("notified", data={"ok": True})


async def test_errors_reach_the_calling_thread() -> None:
    async with open_task_manager() as manager:
        portal = manager.portal()
        await manager.start("approval", "A", "chat", plugin)
        with pytest.raises(TaskAlreadyRunning, match="approval:A"):
            await in_a_thread(portal.start, "approval", "A", "chat", plugin)
        with pytest.raises(UnknownTaskType, match="nope"):
            await in_a_thread(portal.start, "nope", "N", "chat", plugin)
        with pytest.raises(TypeError, match="task_id"):
            await in_a_thread(portal.is_running, "approval", 42)
        for task_id in ("A", "not running"):
            with pytest.raises(TypeError, match=r"wait point key.*42"):
                await in_a_thread(portal.notify, "approval", task_id, 42)
            with pytest.raises(TypeError, match=r"wait point key.*42"):
                await in_a_thread(portal.cancel_wait, "approval", task_id, 42)
        assert manager.get_running_tasks() == ["approval:A"]
        await manager.stop_all()


# -- when the manager is gone, or from the wrong thread --------------------------------------------------------

CALLS: dict[str, Callable[[TaskPortal], object]] = {
    "start": lambda portal: portal.start("approval", "X", "chat", plugin),
    "cancel": lambda portal: portal.cancel("approval", "A"),
    "stop_all": lambda portal: portal.stop_all(),
    "get_state": lambda portal: portal.get_state("approval", "A"),
    "is_running": lambda portal: portal.is_running("approval", "A"),
    "get_running_tasks": lambda portal: portal.get_running_tasks(),
    "notify": lambda portal: portal.notify("approval", "A", "go", True),
    "cancel_wait": lambda portal: portal.cancel_wait("approval", "A", "go"),
}


@pytest.mark.parametrize("method", list(CALLS))
async def test_every_method_raises_manager_closed_once_the_manager_has_closed(method: str) -> None:
    async with open_task_manager() as manager:
        portal = manager.portal()
        await manager.start("approval", "A", "chat", plugin)  # still running when the block ends
    with pytest.raises(ManagerClosed):
        await in_a_thread(CALLS[method], portal)


@pytest.mark.parametrize("method", list(CALLS))
def test_every_method_raises_manager_closed_after_trio_run_has_returned(method: str) -> None:
    async def main() -> TaskPortal:
        async with open_task_manager() as manager:
            await manager.start("approval", "A", "chat", plugin)
            return manager.portal()

    portal = trio.run(main)
    with pytest.raises(ManagerClosed):
        CALLS[method](portal)


def test_a_call_that_the_end_of_trio_run_cuts_short_raises_manager_closed() -> None:
    """The manager lives in a system task; the run ends while a thread's ``cancel(grace=...)`` still waits."""
    stubborn = Plugin(name="Stubborn", module_name="stubborn")
    outcome: list[object] = []

    @stubborn.mount_async_task("stubborn")
    async def ignores_requests(handle: AsyncTaskHandle, asked: trio.Event) -> AsyncIterator[TaskCtl]:
        yield TaskCtl.report_progress("working", 10)
        await handle.cancel_requested()
        asked.set()
        await trio.sleep_forever()

    def client(portal: TaskPortal) -> None:
        try:
            outcome.append(portal.cancel("stubborn", "S", grace=1000))
        except BaseException as exc:  # the thread reports whatever it got
            outcome.append(exc)

    threads: list[threading.Thread] = []

    async def main() -> None:
        opened = trio.Event()
        asked = trio.Event()
        portals: list[TaskPortal] = []

        async def host() -> None:
            async with open_task_manager() as manager:
                await manager.start("stubborn", "S", "chat", stubborn, asked)
                portals.append(manager.portal())
                opened.set()
                await trio.sleep_forever()

        trio.lowlevel.spawn_system_task(host)
        await opened.wait()
        thread = threading.Thread(target=client, args=portals)
        thread.start()
        with trio.fail_after(10):
            await asked.wait()  # the thread's cancel is in its grace period
        threads.append(thread)

    trio.run(main)  # returns: Trio cancels the system tasks, the manager's and the portal's call
    threads[0].join(timeout=10)
    assert len(outcome) == 1
    assert isinstance(outcome[0], ManagerClosed), outcome


@pytest.mark.parametrize("method", list(CALLS))
async def test_every_method_called_in_the_trio_thread_raises_at_once(method: str) -> None:
    async with open_task_manager() as manager:
        portal = manager.portal()
        await manager.start("approval", "A", "chat", plugin)
        with pytest.raises(RuntimeError, match="thread that runs Trio"):
            CALLS[method](portal)  # a plain call: it must raise, not block the Trio thread
        assert manager.get_running_tasks() == ["approval:A"], "nothing was done"
        await manager.stop_all()


def test_in_guest_mode_a_call_from_the_host_loop_is_refused_with_the_way_that_works() -> None:
    """Embedded in an asyncio program (Trio's guest mode), the host loop's code runs in Trio's thread: a
    portal call there would block the loop that runs Trio. It is refused, pointing to a worker thread, and
    the call made that way works."""
    import asyncio

    seen: list[str] = []

    async def trio_main(portal_ready: asyncio.Future[Any], loop: asyncio.AbstractEventLoop) -> None:
        async with open_task_manager() as manager:
            await manager.start("approval", "A", "chat", plugin)
            loop.call_soon_threadsafe(portal_ready.set_result, manager.portal())
            while manager.is_running("approval", "A"):
                await trio.sleep(0.01)

    async def host() -> None:
        loop = asyncio.get_running_loop()
        portal_ready: asyncio.Future[Any] = loop.create_future()
        done: asyncio.Future[Any] = loop.create_future()
        trio.lowlevel.start_guest_run(
            trio_main, portal_ready, loop,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            done_callback=done.set_result,
            host_uses_signal_set_wakeup_fd=True,
        )  # fmt: skip
        portal = await portal_ready
        try:
            portal.notify("approval", "A", "go", True)
        except RuntimeError as exc:
            seen.append(str(exc))
        notified = await asyncio.wait_for(loop.run_in_executor(None, portal.notify, "approval", "A", "go", True), 10)
        seen.append(f"from a worker thread: {notified}")
        (await asyncio.wait_for(done, 10)).unwrap()

    asyncio.run(host())
    assert "loop.run_in_executor" in seen[0]
    assert seen[1:] == ["from a worker thread: True"]
