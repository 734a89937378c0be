"""AsyncTaskHandle: wait points (wait, notify, cancel_wait, cancel_all), is_cancelled and agent notices.

Most tests run a one-step body: ``step(handle)`` is awaited and its return value becomes the data of
the task's SUCCESS, so the test can assert on what the body saw after the task has ended.
"""

from __future__ import annotations

import contextlib
import copy
import math
import pickle
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from trio_tasks import (
    AgentNotice,
    AsyncTaskHandle,
    ManagerClosed,
    Plugin,
    TaskCtl,
    TaskManager,
    TaskSignal,
    WaitCancelled,
    open_task_manager,
)
from trio_tasks._manager import NOTICE_BUFFER

plugin = Plugin(name="Handle", module_name="handle")
Step = Callable[[AsyncTaskHandle], Awaitable[Any]]


@plugin.mount_async_task("run")
async def run(handle: AsyncTaskHandle, step: Step) -> Any:
    return await step(handle)


async def start(manager: TaskManager, step: Step, task_id: str = "T") -> tuple[AsyncTaskHandle, list[TaskCtl]]:
    """Start ``step`` as task ``run:<task_id>``; its handle and the list its terminal callback appends to."""
    endings: list[TaskCtl] = []
    handle = await manager.start("run", task_id, "chat", plugin, step, on_terminal=endings.append)
    return handle, endings


def succeeded_with(endings: list[TaskCtl]) -> Any:
    """The data of the one SUCCESS in ``endings``; fails unless the callback fired exactly once, with SUCCESS."""
    assert len(endings) == 1, endings
    [ctl] = endings
    assert ctl.signal is TaskSignal.SUCCESS, ctl
    return ctl.data


def timed(key: str, timeout: float | None = None) -> Step:
    """A step that waits on ``key`` and returns (value, virtual seconds the wait took)."""

    async def step(handle: AsyncTaskHandle) -> tuple[Any, float]:
        began = trio.current_time()
        value = await handle.wait(key, timeout=timeout)
        return value, trio.current_time() - began

    return step


def waiting(key: str) -> Step:
    async def step(handle: AsyncTaskHandle) -> Any:
        return await handle.wait(key)

    return step


async def park(handle: AsyncTaskHandle) -> None:
    await trio.sleep_forever()


# -- notify and wait ---------------------------------------------------------------------------------------


async def test_notify_before_wait_is_kept_and_the_latest_value_wins(autojump_clock: trio.testing.MockClock) -> None:
    async def late_wait(handle: AsyncTaskHandle) -> tuple[Any, float]:
        await trio.sleep(10)
        return await timed("k")(handle)

    async with open_task_manager() as manager:
        handle, endings = await start(manager, late_wait)
        assert handle.notify("k", "first") is False, "nobody waits yet"
        assert handle.notify("k", "latest") is False
        await trio.sleep(20)
    assert succeeded_with(endings) == ("latest", 0), "the kept value is returned at once"


async def test_a_kept_value_is_used_once(autojump_clock: trio.testing.MockClock) -> None:
    async def wait_twice(handle: AsyncTaskHandle) -> tuple[Any, Any]:
        await trio.sleep(1)
        return await handle.wait("k"), await handle.wait("k", timeout=5)

    async with open_task_manager() as manager:
        handle, endings = await start(manager, wait_twice)
        handle.notify("k", "once")
        await trio.sleep(10)
    assert succeeded_with(endings) == ("once", None)


async def test_notify_while_waiting_resumes_the_wait() -> None:
    async with open_task_manager() as manager:
        handle, endings = await start(manager, waiting("k"))
        await trio.testing.wait_all_tasks_blocked()
        assert endings == []
        assert handle.notify("k", {"approved": True}) is True
        await trio.testing.wait_all_tasks_blocked()
        assert handle.notify("k", "too late") is False
    assert succeeded_with(endings) == {"approved": True}


async def test_notify_on_another_key_does_not_resume_the_wait() -> None:
    async with open_task_manager() as manager:
        handle, endings = await start(manager, waiting("k"))
        await trio.testing.wait_all_tasks_blocked()
        assert handle.notify("other", 1) is False
        await trio.testing.wait_all_tasks_blocked()
        assert manager.is_running("run", "T")
    assert endings[0].signal is TaskSignal.CANCEL


async def test_wait_timeout_returns_none_after_exactly_the_timeout(autojump_clock: trio.testing.MockClock) -> None:
    async with open_task_manager() as manager:
        _, endings = await start(manager, timed("k", timeout=90))
        await trio.sleep(1000)
    assert succeeded_with(endings) == (None, 90)


async def test_wait_timeout_zero_returns_none_at_once(autojump_clock: trio.testing.MockClock) -> None:
    async with open_task_manager() as manager:
        _, endings = await start(manager, timed("k", timeout=0))
        await trio.sleep(1)
    assert succeeded_with(endings) == (None, 0)


async def test_wait_timeout_zero_still_returns_a_kept_value(autojump_clock: trio.testing.MockClock) -> None:
    async def late_poll(handle: AsyncTaskHandle) -> tuple[Any, float]:
        await trio.sleep(10)
        return await timed("k", timeout=0)(handle)

    async with open_task_manager() as manager:
        handle, endings = await start(manager, late_poll)
        handle.notify("k", "ready")
        await trio.sleep(20)
    assert succeeded_with(endings) == ("ready", 0)


async def test_wait_timeout_infinite_waits_until_notified(autojump_clock: trio.testing.MockClock) -> None:
    async with open_task_manager() as manager:
        handle, endings = await start(manager, timed("k", timeout=math.inf))
        await trio.sleep(10**9)
        assert endings == []
        assert handle.notify("k", "at last") is True
        await trio.testing.wait_all_tasks_blocked()
    assert succeeded_with(endings) == ("at last", 10**9)


# -- cancel_wait and cancel_all ------------------------------------------------------------------------------


async def test_cancel_wait_raises_wait_cancelled_in_the_wait() -> None:
    async def catch(handle: AsyncTaskHandle) -> Any:
        with pytest.raises(WaitCancelled) as info:
            await handle.wait("k")
        for copied in (info.value, copy.copy(info.value), pickle.loads(pickle.dumps(info.value))):
            assert (str(copied), copied.key) == ("wait 'k' was cancelled", "k"), "its copies say the same"
        return info.value.key

    async with open_task_manager() as manager:
        handle, endings = await start(manager, catch)
        await trio.testing.wait_all_tasks_blocked()
        assert handle.cancel_wait("k") is True
        assert handle.cancel_wait("k") is False, "no wait is pending any more"
        await trio.testing.wait_all_tasks_blocked()
    assert succeeded_with(endings) == "k"


async def test_a_task_that_catches_wait_cancelled_goes_on() -> None:
    async def catch_then_wait_again(handle: AsyncTaskHandle) -> Any:
        with contextlib.suppress(WaitCancelled):
            await handle.wait("first")
        assert not handle.is_cancelled, "cancel_wait cancels one wait point, not the task"
        return await handle.wait("second")

    async with open_task_manager() as manager:
        handle, endings = await start(manager, catch_then_wait_again)
        await trio.testing.wait_all_tasks_blocked()
        handle.cancel_wait("first")
        await trio.testing.wait_all_tasks_blocked()
        assert handle.notify("second", "went on") is True
        await trio.testing.wait_all_tasks_blocked()
    assert succeeded_with(endings) == "went on"


async def test_cancel_wait_without_a_pending_wait_returns_false_and_keeps_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def late_wait(handle: AsyncTaskHandle) -> tuple[Any, float]:
        await trio.sleep(10)
        return await timed("k", timeout=5)(handle)

    async with open_task_manager() as manager:
        handle, endings = await start(manager, late_wait)
        assert handle.cancel_wait("k") is False
        await trio.sleep(20)
    assert succeeded_with(endings) == (None, 5), "the later wait is not cancelled"


async def test_cancel_all_cancels_every_pending_wait_and_returns_the_count() -> None:
    cancelled: list[str] = []

    async def wait_and_record(handle: AsyncTaskHandle, key: str) -> None:
        try:
            await handle.wait(key)
        except WaitCancelled as exc:
            cancelled.append(exc.key)

    async def two_waits(handle: AsyncTaskHandle) -> bool:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_and_record, handle, "a")
            nursery.start_soon(wait_and_record, handle, "b")
        return handle.is_cancelled

    async with open_task_manager() as manager:
        handle, endings = await start(manager, two_waits)
        await trio.testing.wait_all_tasks_blocked()
        assert handle.is_cancelled is False
        assert handle.cancel_all() == 2
        assert handle.is_cancelled is True
        await trio.testing.wait_all_tasks_blocked()
    assert succeeded_with(endings) is True
    assert sorted(cancelled) == ["a", "b"]


async def test_after_cancel_all_every_wait_raises_at_once(autojump_clock: trio.testing.MockClock) -> None:
    async def late_wait(handle: AsyncTaskHandle) -> tuple[str, float]:
        await trio.sleep(10)
        began = trio.current_time()
        with pytest.raises(WaitCancelled) as info:
            await handle.wait("later", timeout=60)
        return info.value.key, trio.current_time() - began

    async with open_task_manager() as manager:
        handle, endings = await start(manager, late_wait)
        assert handle.cancel_all() == 0, "no wait was pending"
        assert handle.is_cancelled
        handle.notify("later", "ignored")  # a kept value does not reopen closed wait points
        await trio.sleep(100)
    assert succeeded_with(endings) == ("later", 0)


# -- concurrent waits -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
async def test_two_keys_waited_at_once_by_two_child_tasks(order: tuple[str, str]) -> None:
    async def wait_both(handle: AsyncTaskHandle) -> dict[str, Any]:
        got: dict[str, Any] = {}

        async def wait_one(key: str) -> None:
            got[key] = await handle.wait(key)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_one, "a")
            nursery.start_soon(wait_one, "b")
        return got

    async with open_task_manager() as manager:
        handle, endings = await start(manager, wait_both)
        await trio.testing.wait_all_tasks_blocked()
        for key in order:
            assert handle.notify(key, f"value of {key}") is True
            await trio.testing.wait_all_tasks_blocked()
    assert succeeded_with(endings) == {"a": "value of a", "b": "value of b"}


async def test_waiting_twice_on_the_same_key_at_once_raises() -> None:
    async def double_wait(handle: AsyncTaskHandle) -> tuple[str, Any]:
        first: list[Any] = []

        async def wait_first(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()  # does not yield: the wait below is pending before the parent goes on
            first.append(await handle.wait("approval"))

        async with trio.open_nursery() as nursery:
            await nursery.start(wait_first)
            with pytest.raises(RuntimeError) as info:
                await handle.wait("approval")
            handle.notify("approval", "yes")
        return str(info.value), first

    async with open_task_manager() as manager:
        _, endings = await start(manager, double_wait)
        await trio.testing.wait_all_tasks_blocked()
    message, first = succeeded_with(endings)
    assert "'approval'" in message
    assert "already waiting" in message
    assert first == ["yes"], "the first wait is undisturbed"


async def wait_in_a_scope(handle: AsyncTaskHandle, scopes: list[trio.CancelScope]) -> None:
    """Wait on "k" in a scope of the body's own, appended to ``scopes`` (cancelling it ends the wait)."""
    with trio.CancelScope() as scope:
        scopes.append(scope)
        await handle.wait("k")


async def test_a_value_notified_to_a_wait_being_cancelled_is_kept_for_the_next_wait() -> None:
    """The body's own scope around the wait is cancelled; the notify comes before the wait has resumed."""
    scopes: list[trio.CancelScope] = []

    async def step(handle: AsyncTaskHandle) -> Any:
        await wait_in_a_scope(handle, scopes)
        return await handle.wait("k")

    async with open_task_manager() as manager:
        handle, endings = await start(manager, step)
        scopes[0].cancel()
        assert handle.notify("k", "approved") is False, "nothing waits any more"
        assert handle.cancel_wait("k") is False
        await trio.testing.wait_all_tasks_blocked()
    assert succeeded_with(endings) == "approved"


async def test_a_value_notified_to_a_wait_timing_out_is_kept_for_the_next_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The wait times out in the batch the notify is made in: Trio runs that batch in a random order, so in
    about half the runs the notify finds the wait timed out but not yet resumed; twenty runs see that (all but
    surely). Either way the value reaches the body."""

    async def step(handle: AsyncTaskHandle) -> Any:
        first = await handle.wait("k", timeout=1)
        return first, await handle.wait("k")

    for n in range(20):
        async with open_task_manager() as manager:
            handle, endings = await start(manager, step)
            await trio.sleep(1)  # the wait's deadline passes at the same instant
            handle.notify("k", "late")
            await trio.testing.wait_all_tasks_blocked()
        assert succeeded_with(endings) == (None, "late"), f"run {n}"


async def test_cancel_all_does_not_count_a_wait_being_cancelled() -> None:
    scopes: list[trio.CancelScope] = []

    async def step(handle: AsyncTaskHandle) -> Any:
        await wait_in_a_scope(handle, scopes)
        return "cancelled by its own scope"

    async with open_task_manager() as manager:
        handle, endings = await start(manager, step)
        scopes[0].cancel()
        assert handle.cancel_all() == 0
        await trio.testing.wait_all_tasks_blocked()
    assert succeeded_with(endings) == "cancelled by its own scope"


# -- a handle whose task has ended -----------------------------------------------------------------------------------


async def test_notify_and_cancel_wait_after_the_end_return_false_and_keep_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def poll(handle: AsyncTaskHandle) -> Any:
        return await handle.wait("k", timeout=0)

    async with open_task_manager() as manager:
        old, endings = await start(manager, poll)
        await trio.testing.wait_all_tasks_blocked()
        assert succeeded_with(endings) is None
        assert old.notify("k", "stale") is False
        assert old.cancel_wait("k") is False
        _, endings_again = await start(manager, poll)  # same (type, id), a new run
        await trio.testing.wait_all_tasks_blocked()
    assert succeeded_with(endings_again) is None, "nothing notified to the ended handle reaches the new run"


async def test_a_wait_from_outside_the_body_raises_when_the_task_ends(autojump_clock: trio.testing.MockClock) -> None:
    async def nap(handle: AsyncTaskHandle) -> str:
        await trio.sleep(1)
        return "done"

    raised: list[tuple[str, float]] = []

    async def outsider(handle: AsyncTaskHandle) -> None:
        with pytest.raises(RuntimeError) as error:
            await handle.wait("k")
        raised.append((str(error.value), trio.current_time()))

    async with open_task_manager() as manager, trio.open_nursery() as nursery:
        handle, endings = await start(manager, nap)
        nursery.start_soon(outsider, handle)
    assert succeeded_with(endings) == "done"
    assert raised == [("task run:T ended during this wait on 'k'", 1)], "it raised when the task ended"


async def test_wait_on_an_ended_handle_raises() -> None:
    async with open_task_manager() as manager:
        handle, _ = await start(manager, waiting("k"))
        await manager.cancel("run", "T")
        with pytest.raises(RuntimeError, match=r"run:T has ended"):
            await handle.wait("k")


# -- is_cancelled --------------------------------------------------------------------------------------------------


async def cancel_via_task_cancel(manager: TaskManager) -> None:
    assert await manager.cancel("run", "T") is True


async def cancel_via_stop_all(manager: TaskManager) -> None:
    assert await manager.stop_all() == 1


async def cancel_by_closing(manager: TaskManager) -> None:
    pass  # the block ends with the task still running


@pytest.mark.parametrize("cancel", [cancel_via_task_cancel, cancel_via_stop_all, cancel_by_closing])
async def test_is_cancelled_on_cancel_stop_all_and_close(cancel: Callable[[TaskManager], Awaitable[None]]) -> None:
    seen_in_finally: list[bool] = []

    async def park_and_look(handle: AsyncTaskHandle) -> None:
        try:
            await trio.sleep_forever()
        finally:
            seen_in_finally.append(handle.is_cancelled)

    async with open_task_manager() as manager:
        handle, endings = await start(manager, park_and_look)
        await trio.testing.wait_all_tasks_blocked()
        assert handle.is_cancelled is False
        await cancel(manager)
    assert seen_in_finally == [True]
    assert handle.is_cancelled is True
    assert [ctl.signal for ctl in endings] == [TaskSignal.CANCEL]


async def test_a_task_started_after_stop_all_is_not_cancelled() -> None:
    async with open_task_manager() as manager:
        await start(manager, park, "before")
        await manager.stop_all()
        after, _ = await start(manager, park, "after")
        await trio.testing.wait_all_tasks_blocked()
        assert after.is_cancelled is False


# -- notify_agent ---------------------------------------------------------------------------------------------------


async def two_notices(handle: AsyncTaskHandle) -> None:
    await handle.notify_agent("Scene 1 is ready")
    await handle.notify_agent("Rendering scene 2", trigger=False)


EXPECTED_NOTICES = [
    AgentNotice("run", "N", "chat", "Scene 1 is ready", trigger=True),
    AgentNotice("run", "N", "chat", "Rendering scene 2", trigger=False),
]


async def test_notify_agent_calls_a_sync_callback() -> None:
    received: list[AgentNotice] = []
    async with open_task_manager(on_agent_notice=received.append) as manager:
        _, endings = await start(manager, two_notices, "N")
        await trio.testing.wait_all_tasks_blocked()
    assert received == EXPECTED_NOTICES
    assert succeeded_with(endings) is None


async def test_notify_agent_awaits_an_async_callback() -> None:
    received: list[AgentNotice] = []

    async def on_agent_notice(notice: AgentNotice) -> None:
        await trio.sleep(0)
        received.append(notice)

    async def notify_and_look(handle: AsyncTaskHandle) -> int:
        await handle.notify_agent("Scene 1 is ready")
        return len(received)

    async with open_task_manager(on_agent_notice=on_agent_notice) as manager:
        _, endings = await start(manager, notify_and_look, "N")
        await trio.testing.wait_all_tasks_blocked()
    assert received == EXPECTED_NOTICES[:1]
    assert succeeded_with(endings) == 1, "notify_agent returns once the async callback has run"


async def test_agent_notices_in_order_until_the_manager_closes(autojump_clock: trio.testing.MockClock) -> None:
    received: list[AgentNotice] = []
    with trio.fail_after(60):  # a reader that never ends fails here instead of hanging
        async with trio.open_nursery() as nursery, open_task_manager() as manager:

            async def read() -> None:
                # extends `received` only once the loop has ended
                received.extend([notice async for notice in manager.agent_notices()])

            nursery.start_soon(read)
            _, endings = await start(manager, two_notices, "N")
            await trio.testing.wait_all_tasks_blocked()
            assert received == []
            # leaving the block closes the manager: the reader's loop ends and the nursery can exit
    assert received == EXPECTED_NOTICES
    assert succeeded_with(endings) is None


async def test_a_full_notice_queue_makes_notify_agent_wait() -> None:
    count = NOTICE_BUFFER + 76

    async def chatty(handle: AsyncTaskHandle) -> None:
        for i in range(count):
            await handle.notify_agent(f"notice {i}")

    async with open_task_manager() as manager:
        _, endings = await start(manager, chatty, "N")
        await trio.testing.wait_all_tasks_blocked()
        assert manager.is_running("run", "N"), "the task is blocked on the full queue"
        notices = manager.agent_notices()
        stats = notices.statistics()
        assert (stats.current_buffer_used, stats.tasks_waiting_send) == (NOTICE_BUFFER, 1)
        messages = [(await notices.receive()).message for _ in range(count)]
        await trio.testing.wait_all_tasks_blocked()
        assert endings == [TaskCtl.success()]
    assert messages == [f"notice {i}" for i in range(count)], "none dropped, none reordered"


async def test_agent_notices_with_a_callback_raises() -> None:
    async with open_task_manager(on_agent_notice=print) as manager:
        with pytest.raises(RuntimeError, match="on_agent_notice"):
            manager.agent_notices()


@pytest.mark.parametrize("callback", [None, print], ids=["queue", "callback"])
async def test_notify_agent_after_the_manager_closed_raises(callback: Callable[[AgentNotice], object] | None) -> None:
    async with open_task_manager(on_agent_notice=callback) as manager:
        handle, _ = await start(manager, park)
    with pytest.raises(ManagerClosed, match="closed"):
        await handle.notify_agent("anyone there?")


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_raising_notice_callback_is_logged_and_harms_no_task(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    def sync_callback(notice: AgentNotice) -> None:
        raise RuntimeError(f"agent bug on {notice.message}")

    async def async_callback(notice: AgentNotice) -> None:
        await trio.sleep(0)
        sync_callback(notice)

    async with open_task_manager(on_agent_notice=sync_callback if kind == "sync" else async_callback) as manager:
        _, endings = await start(manager, two_notices, "N")
        await trio.testing.wait_all_tasks_blocked()
    assert succeeded_with(endings) is None, "the task went on past both notices"
    logged = [r.getMessage() for r in caplog.records if r.name == "trio_tasks"]
    assert logged == ["on_agent_notice callback raised on a notice of task run:N; ignored"] * 2


@pytest.mark.parametrize("inside", ["its finally", "a child of its nursery"])
async def test_a_cancel_that_a_notice_callback_meets_and_hides_with_an_error_still_ends_the_task(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture, inside: str
) -> None:
    """The body waits in notify_agent, in an async callback posting to a chat service, when it is cancelled;
    the callback's cleanup raises, as a cut connection does. The error is logged; the cancel ends the task."""

    async def post() -> None:
        try:
            await trio.sleep_forever()
        finally:
            raise ConnectionError("connection reset")

    async def callback(notice: AgentNotice) -> None:
        if inside == "its finally":
            await post()
        else:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(post)

    async def notifies(handle: AsyncTaskHandle) -> str:
        await handle.notify_agent("Scene 1 is ready")
        return "went on past its cancel"

    async with open_task_manager(on_agent_notice=callback) as manager:
        _, endings = await start(manager, notifies)
        await trio.sleep(1)
        assert await manager.cancel("run", "T") is True
    assert endings == [TaskCtl.cancel("Cancelled by cancel()")]
    logged = [r for r in caplog.records if r.name == "trio_tasks"]
    assert [r.getMessage() for r in logged] == ["on_agent_notice callback raised on a notice of task run:T; ignored"]
    assert "connection reset" in caplog.text


async def test_an_async_generator_function_as_notice_callback_is_logged_as_such(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def callback(notice: AgentNotice) -> AsyncIterator[None]:
        yield  # pragma: no cover - never runs: that is what the log says

    async with open_task_manager(on_agent_notice=callback) as manager:
        _, endings = await start(manager, two_notices, "N")
        await trio.testing.wait_all_tasks_blocked()
    assert succeeded_with(endings) is None
    logged = [r.getMessage() for r in caplog.records if r.name == "trio_tasks"]
    assert len(logged) == 2
    assert logged[0].startswith("on_agent_notice callback returned an async generator on task run:N, so none")


@pytest.mark.parametrize("callback", ["none (queue)", "sync", "async", "async without await"])
async def test_notify_agent_in_a_cancelled_scope_raises_cancelled_and_sends_nothing(callback: str) -> None:
    received: list[AgentNotice] = []

    async def awaits(notice: AgentNotice) -> None:
        await trio.sleep(0)
        received.append(notice)

    async def does_not_await(notice: AgentNotice) -> None:
        received.append(notice)

    callbacks = {"sync": received.append, "async": awaits, "async without await": does_not_await}
    async with open_task_manager(on_agent_notice=callbacks.get(callback)) as manager:
        handle, _ = await start(manager, park)
        with trio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(trio.Cancelled):
                await handle.notify_agent("in a cancelled scope")
        with trio.CancelScope(shield=True):
            await handle.notify_agent("shielded")
        if callback == "none (queue)":
            received.append(manager.agent_notices().receive_nowait())
    assert [notice.message for notice in received] == ["shielded"]


async def test_a_second_wait_on_a_key_is_not_dropped_by_the_end_of_a_cancelled_first_one() -> None:
    """Wait A is cancelled (not yet resumed) and passed by cancel_wait; wait B on the same key registers; A's
    cleanup must not unregister B."""
    async with open_task_manager() as manager:
        handle, _ = await start(manager, park)
        async with trio.open_nursery() as nursery:

            async def wait_a(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
                with trio.CancelScope() as scope:
                    task_status.started(scope)
                    await handle.wait("k")

            scope_a = await nursery.start(wait_a)
            scope_a.cancel()
            assert handle.cancel_wait("k") is False, "A no longer waits"

            async def notify_later() -> None:
                await trio.testing.wait_all_tasks_blocked()
                assert handle.notify("k", 42) is True

            nursery.start_soon(notify_later)
            assert await handle.wait("k") == 42  # B
        await manager.cancel("run", "T")


@pytest.mark.parametrize("waits_before", [0, 1], ids=["alone", "beside another key"])
async def test_a_wait_that_a_cancel_reached_gives_way_to_a_new_wait_on_its_key(waits_before: int) -> None:
    async with open_task_manager() as manager:
        handle, _ = await start(manager, park)
        async with trio.open_nursery() as nursery:
            for n in range(waits_before):
                nursery.start_soon(handle.wait, f"other-{n}")

            async def wait_a(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
                with trio.CancelScope() as scope:
                    task_status.started(scope)
                    await handle.wait("k")

            scope_a = await nursery.start(wait_a)
            scope_a.cancel()  # A no longer waits, though it has not resumed yet

            async def notify_later() -> None:
                await trio.testing.wait_all_tasks_blocked()
                assert handle.notify("k", "for B") is True

            nursery.start_soon(notify_later)
            assert await handle.wait("k") == "for B"  # B: registers beside A's cancelled wait
            for n in range(waits_before):
                handle.notify(f"other-{n}")
        await manager.cancel("run", "T")
