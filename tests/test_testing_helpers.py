"""trio_tasks.testing: ``run_task`` and the ``task_manager`` fixture (found through the pytest11 entry point)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
import trio
import trio.testing

from trio_tasks import (
    AsyncTaskHandle,
    NoTaskManager,
    Plugin,
    RetryPolicy,
    TaskCtl,
    TaskManager,
    TaskSignal,
    TaskTimeout,
    UnknownTaskType,
    open_task_manager,
    task,
)
from trio_tasks.testing import run_task

plugin = Plugin(name="Helpers", module_name="helpers")


@plugin.mount_async_task("answer")
async def answer(handle: AsyncTaskHandle, question: str) -> AsyncIterator[TaskCtl]:
    yield TaskCtl.report_progress(f"asking: {question}", 50)
    reply = await handle.wait("answer", timeout=3600)
    yield TaskCtl.success("answered", data=reply)


@plugin.mount_async_task("whoami")
async def whoami(handle: AsyncTaskHandle, task_id: str, chat_key: str) -> AsyncIterator[TaskCtl]:
    yield TaskCtl.success(data=(task_id, chat_key))


@plugin.mount_async_task("chatty")
async def chatty(handle: AsyncTaskHandle, count: int) -> AsyncIterator[TaskCtl]:
    for n in range(count):  # no checkpoint in between: nobody could read these as they happen
        yield TaskCtl.report_progress(f"step {n}", 0)


@plugin.mount_async_task("flaky", retry=RetryPolicy(attempts=3, backoff=2.0, retry_on=(ConnectionError,)))
async def flaky(handle: AsyncTaskHandle, attempts: list[int]) -> AsyncIterator[TaskCtl]:
    attempts.append(len(attempts) + 1)
    yield TaskCtl.report_progress(f"attempt {len(attempts)}", 10)
    if len(attempts) < 3:
        raise ConnectionError("try again")
    yield TaskCtl.success("finally")


@plugin.mount_async_task("announcer")
async def announcer(handle: AsyncTaskHandle, count: int) -> AsyncIterator[TaskCtl]:
    for n in range(count):
        await handle.notify_agent(f"step {n}", trigger=False)
    yield TaskCtl.success(f"{count} notices sent")


ASKING = TaskCtl.report_progress("asking: Deploy?", 50)


async def test_an_hour_long_wait_ends_at_once_with_none(autojump_clock: trio.testing.MockClock) -> None:
    t0 = trio.current_time()
    ctls = await run_task(plugin, "answer", "Deploy?")
    assert ctls == [ASKING, TaskCtl.success("answered", data=None)]
    assert trio.current_time() - t0 == 3600


async def test_run_task_outside_a_manager_opens_its_own(autojump_clock: trio.testing.MockClock) -> None:
    with pytest.raises(NoTaskManager):
        task.get_running_tasks()
    assert await run_task(plugin, "whoami", task_id="W", chat_key="chat-9") == [TaskCtl.success(data=("W", "chat-9"))]
    with pytest.raises(NoTaskManager):
        task.get_running_tasks()


async def test_run_task_inside_a_manager_runs_there() -> None:
    async with open_task_manager() as manager:
        ctls = await run_task(plugin, "whoami", task_id="W")
        assert manager.get_state("whoami", "W") is ctls[-1]
        [info] = manager.list_tasks()
    assert ctls == [TaskCtl.success(data=("W", "test-chat"))]
    assert (info.task_id, info.chat_key, info.status) == ("W", "test-chat", "ended")


async def test_run_task_makes_a_fresh_id_for_each_run() -> None:
    first, second = [(await run_task(plugin, "whoami"))[-1].data for _ in range(2)]
    assert first[0] != second[0]
    assert first[0].startswith("run_task-")
    assert second[0].startswith("run_task-")
    assert first[1] == second[1] == "test-chat"


async def test_run_task_returns_every_ctl_including_progress() -> None:
    ctls = await run_task(plugin, "chatty", 1000)
    assert ctls == [*[TaskCtl.report_progress(f"step {n}", 0) for n in range(1000)], TaskCtl.success()]


async def test_run_task_passes_the_task_timeout(autojump_clock: trio.testing.MockClock) -> None:
    t0 = trio.current_time()
    ctls = await run_task(plugin, "answer", question="Deploy?", task_timeout=60)
    assert ctls[0] == ASKING
    assert ctls[-1].signal is TaskSignal.FAIL
    assert isinstance(ctls[-1].data, TaskTimeout)
    assert trio.current_time() - t0 == 60


async def test_run_task_with_retries_shows_the_attempts(autojump_clock: trio.testing.MockClock) -> None:
    attempts: list[int] = []
    ctls = await run_task(plugin, "flaky", attempts)
    assert attempts == [1, 2, 3]
    assert [(ctl.signal, ctl.attempt) for ctl in ctls] == [
        (TaskSignal.PROGRESS, 1),
        (TaskSignal.PROGRESS, 2),  # backing off before attempt 2
        (TaskSignal.PROGRESS, 2),
        (TaskSignal.PROGRESS, 3),  # backing off before attempt 3
        (TaskSignal.PROGRESS, 3),
        (TaskSignal.SUCCESS, 3),
    ]
    assert [ctl.message for ctl in ctls[::2]] == ["attempt 1", "attempt 2", "attempt 3"]


async def test_run_task_passes_on_terminal_to_start() -> None:
    ends: list[TaskCtl] = []
    ctls = await run_task(plugin, "whoami", task_id="W", on_terminal=ends.append)
    assert ends == ctls[-1:], "called once, with the terminal"


async def test_a_wait_under_run_task_is_resumed_from_beside(
    task_manager: TaskManager, autojump_clock: trio.testing.MockClock
) -> None:
    async def answer_soon() -> None:
        await trio.sleep(1)
        handle = task.get_handle("answer", "A1")
        assert handle is not None
        assert handle.notify("answer", 42)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer_soon)
        ctls = await run_task(plugin, "answer", "Deploy?", task_id="A1")
    assert ctls == [ASKING, TaskCtl.success("answered", data=42)]


async def test_a_timeout_around_run_task_cancels_the_task(
    task_manager: TaskManager, autojump_clock: trio.testing.MockClock
) -> None:
    ends: list[TaskCtl] = []
    with pytest.raises(trio.TooSlowError):
        with trio.fail_after(10):
            await run_task(plugin, "answer", "Deploy?", task_id="A1", on_terminal=ends.append)
    left = TaskCtl.cancel("Cancelled: the caller of run_task stopped waiting for it")
    assert not task_manager.is_running("answer", "A1"), "not left waiting for its hour"
    assert ends == [left]
    assert task_manager.get_state("answer", "A1") == left


async def test_a_timeout_around_run_task_in_its_own_manager_cancels_the_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ends: list[TaskCtl] = []
    with trio.move_on_after(10) as scope:
        await run_task(plugin, "answer", "Deploy?", task_id="A1", on_terminal=ends.append)
    assert scope.cancelled_caught
    assert trio.current_time() == 10, "the task's own manager closed at once, no grace needed"
    assert ends == [TaskCtl.cancel("Cancelled from outside the task manager")], "the manager is inside the scope"


async def test_run_task_in_a_task_that_outlived_its_manager_opens_its_own() -> None:
    ran: list[list[TaskCtl]] = []
    leave = trio.Event()

    async def later() -> None:  # started inside the manager's block: it sees that manager, now closed
        await leave.wait()
        ran.append(await run_task(plugin, "whoami", task_id="W"))

    async with trio.open_nursery() as nursery:
        async with open_task_manager() as manager:
            nursery.start_soon(later)
        assert manager.closed
        leave.set()
    assert ran == [[TaskCtl.success(data=("W", "test-chat"))]]
    assert manager.get_state("whoami", "W") is None, "not run in the closed manager"


async def test_run_task_in_its_own_manager_waits_for_an_async_on_terminal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ends: list[TaskCtl] = []

    async def on_terminal(ctl: TaskCtl) -> None:
        await trio.sleep(5)  # past its first checkpoint: a manager closing with no grace would cancel it here
        ends.append(ctl)

    ctls = await run_task(plugin, "whoami", task_id="W", on_terminal=on_terminal)
    assert ends == ctls[-1:], "it ran to its end before run_task returned"


async def test_run_task_in_its_own_manager_does_not_block_on_notices_nobody_can_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(5):  # (the notice queue holds 1024: the next notice waited for a reader for ever)
        ctls = await run_task(plugin, "announcer", 2000)
    assert ctls == [TaskCtl.success("2000 notices sent")]


@pytest.mark.parametrize(("task_type", "task_id", "shown"), [
    (None, None, "task_type must be a str, got None (NoneType)"),
    (None, "T1", "task_type must be a str, got None (NoneType)"),
    ("whoami", 7, "task_id must be a str, got 7 (int)"),
])  # fmt: skip
async def test_run_task_names_a_bad_id_as_start_does(task_type: object, task_id: object, shown: str) -> None:
    with trio.fail_after(5), pytest.raises(TypeError) as caught:
        await run_task(plugin, task_type, task_id=task_id)  # type: ignore[arg-type]
    assert str(caught.value) == shown


async def test_run_task_raises_what_start_raises() -> None:
    with trio.fail_after(5), pytest.raises(UnknownTaskType, match="nope"):
        await run_task(plugin, "nope")


def test_the_helpers_import_without_pytest() -> None:
    code = "import sys; sys.modules['pytest'] = None; from trio_tasks.testing import *; print(run_task.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "run_task\n", "")


# -- the task_manager fixture -----------------------------------------------------------------------------------


async def test_the_fixture_is_a_manager_that_task_refers_to(task_manager: TaskManager) -> None:
    assert isinstance(task_manager, TaskManager)
    handle = await task.start("answer", "A", "chat", plugin, question="Deploy?")
    assert task_manager.get_handle("answer", "A") is handle
    assert task_manager.get_state("answer", "A") == ASKING
    handle.notify("answer", 42)
    await trio.testing.wait_all_tasks_blocked()
    assert task.get_state("answer", "A") == TaskCtl.success("answered", data=42)


async def test_run_task_uses_the_fixture(task_manager: TaskManager) -> None:
    ctls = await run_task(plugin, "whoami", task_id="W")
    assert task_manager.get_state("whoami", "W") is ctls[-1]


@pytest.fixture
def endings() -> Iterator[list[TaskCtl]]:
    """Terminal callbacks recorded during a test; checked once every async fixture has closed."""
    ends: list[TaskCtl] = []
    yield ends
    assert [ctl.signal for ctl in ends] == [TaskSignal.CANCEL], "the fixture cancels what still runs when it closes"


async def test_the_fixture_closes_after_the_test(endings: list[TaskCtl], task_manager: TaskManager) -> None:
    await task_manager.start("answer", "A", "chat", plugin, question="Deploy?", on_terminal=endings.append)
    assert endings == []
