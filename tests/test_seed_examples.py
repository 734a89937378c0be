"""Every code example of seed/async-tasks.md, ported to trio_tasks, behaving as the document says.

The examples are copied with only import changes: ``NekroPlugin`` is :class:`Plugin`, and the
sandbox methods (``@plugin.mount_sandbox_method``, not ours) are plain async functions taking a
small fake ``_ctx``. Where the seed's code cannot run as written, the comment at that spot says
what was changed and why.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing

from trio_tasks import AsyncTaskHandle, Plugin, TaskCtl, TaskManager, TaskSignal, open_task_manager, task
from trio_tasks.testing import run_task

logger = logging.getLogger("my_async_plugin")


@dataclass(frozen=True)
class FakeCtx:
    """Stands in for nekro's ``AgentCtx``: the seed's sandbox methods only read ``chat_key``."""

    chat_key: str


@dataclass(frozen=True)
class PushedMessage:
    chat_key: str
    agent_messages: str
    trigger_agent: bool


@dataclass
class FakeMessageService:
    """Stands in for nekro's ``message_service``: records what would have been pushed to the chat."""

    pushed: list[PushedMessage] = field(default_factory=list)

    def push_system_message(self, chat_key: str, agent_messages: str, trigger_agent: bool) -> None:
        self.pushed.append(PushedMessage(chat_key, agent_messages, trigger_agent))


message_service = FakeMessageService()


@pytest.fixture(autouse=True)
def _clear_pushed_messages() -> None:
    message_service.pushed.clear()


CTX = FakeCtx(chat_key="chat-42")

# -- Core API 1: define an async task ------------------------------------------------------------

plugin = Plugin(
    name="My Async Plugin",
    module_name="my_async_plugin",
    description="Async task example plugin",
    version="1.0.0",
    author="Developer",
    url="https://github.com/xxx",
)


@plugin.mount_async_task("my_task")
async def my_async_task(
    handle: AsyncTaskHandle,
    prompt: str,
    task_id: str,
) -> AsyncGenerator[TaskCtl, None]:
    """Async task example"""
    # Report progress
    yield TaskCtl.report_progress("🔍 Analyzing requirements...", 10)

    # Check if cancelled
    if handle.is_cancelled:
        yield TaskCtl.cancel("Task cancelled")
        return

    # Execute task steps
    yield TaskCtl.report_progress("⚙️ Processing...", 50)

    # Task complete
    yield TaskCtl.success("Processing complete", data={"result": "success"})


# `run_task` returns every TaskCtl a body reports, even those it yields without a checkpoint in between.
# To act between two of its steps, a harness runs the body and calls a hook on each TaskCtl.

harness = Plugin(name="Harness", module_name="harness")
Hook = Callable[[AsyncTaskHandle, TaskCtl], object]


@harness.mount_async_task("tap")
async def tap(
    handle: AsyncTaskHandle, body: Callable[..., AsyncIterator[TaskCtl]], seen: list[TaskCtl], hook: Hook, *args: Any
) -> AsyncIterator[TaskCtl]:
    """Runs ``body(handle, *args)``, recording each TaskCtl and calling ``hook`` before passing it on."""
    async with aclosing(body(handle, *args)) as inner:
        async for ctl in inner:
            seen.append(ctl)
            hook(handle, ctl)
            yield ctl


async def run_tapped(
    body: Callable[..., AsyncIterator[TaskCtl]], *args: Any, hook: Hook
) -> tuple[list[TaskCtl], list[TaskCtl]]:
    """Run ``body`` through the tap: what it yielded, and every TaskCtl the task reported (its terminal last)."""
    seen: list[TaskCtl] = []
    reported = await run_task(harness, "tap", body, seen, hook, *args, chat_key=CTX.chat_key)
    return seen, reported


def handle_of(task_type: str, task_id: str) -> AsyncTaskHandle:
    handle = task.get_handle(task_type, task_id)
    assert handle is not None, f"{task_type}:{task_id} is not running"
    return handle


async def test_my_async_task_reports_its_progress_then_succeeds_with_its_data(task_manager: TaskManager) -> None:
    ctls = await run_task(plugin, "my_task", task_id="T001", chat_key=CTX.chat_key, prompt="Generate report")
    assert ctls == [
        TaskCtl.report_progress("🔍 Analyzing requirements...", 10),
        TaskCtl.report_progress("⚙️ Processing...", 50),
        TaskCtl.success("Processing complete", data={"result": "success"}),
    ]
    assert not task.is_running("my_task", "T001")
    assert task.get_state("my_task", "T001") is ctls[-1]


async def test_my_async_task_yields_its_own_cancel_when_cancelled_before_the_check() -> None:
    def cancel_after_first_progress(handle: AsyncTaskHandle, ctl: TaskCtl) -> None:
        if ctl.signal is TaskSignal.PROGRESS:
            assert not handle.is_cancelled
            assert handle.cancel_all() == 0  # nothing pending, but the task is now cancelled
            assert handle.is_cancelled

    seen, reported = await run_tapped(my_async_task, "Generate report", "T", hook=cancel_after_first_progress)
    assert seen == reported == [
        TaskCtl.report_progress("🔍 Analyzing requirements...", 10),
        TaskCtl.cancel("Task cancelled"),
    ]


# -- Core API 2: TaskCtl properties ------------------------------------------------------------------


def test_taskctl_properties_block() -> None:
    ctl = TaskCtl.success("Done", data={"url": "..."})

    assert ctl.signal == TaskSignal.SUCCESS
    assert ctl.message == "Done"
    assert ctl.data == {"url": "..."}
    assert ctl.progress is None
    assert ctl.is_terminal is True


@pytest.mark.parametrize(
    ("ctl", "signal", "data", "progress", "terminal"),
    [
        (TaskCtl.report_progress("msg", 40), TaskSignal.PROGRESS, None, 40, False),
        (TaskCtl.success("msg", {"k": 1}), TaskSignal.SUCCESS, {"k": 1}, None, True),
        (TaskCtl.fail("msg", "boom"), TaskSignal.FAIL, "boom", None, True),
        (TaskCtl.cancel("msg"), TaskSignal.CANCEL, None, None, True),
    ],
)
def test_taskctl_method_table(
    ctl: TaskCtl, signal: TaskSignal, data: Any, progress: float | None, terminal: bool
) -> None:
    assert (ctl.signal, ctl.message, ctl.data, ctl.progress, ctl.is_terminal) == (
        signal,
        "msg",
        data,
        progress,
        terminal,
    )


# -- Terminal callbacks: basic usage and trigger conditions -------------------------------------------------


def handle_task_complete(ctl: TaskCtl) -> None:
    """Task completion callback"""
    if ctl.signal == TaskSignal.SUCCESS:
        print(f"✅ Task succeeded: {ctl.message}")
        print(f"   Result data: {ctl.data}")
    elif ctl.signal == TaskSignal.FAIL:
        print(f"❌ Task failed: {ctl.message}")
    elif ctl.signal == TaskSignal.CANCEL:
        print(f"⚠️ Task cancelled: {ctl.message}")


async def test_handle_task_complete_prints_the_success(capsys: pytest.CaptureFixture[str]) -> None:
    async with open_task_manager():
        # Pass callback when starting task
        await task.start(
            task_type="my_task",
            task_id="T001",
            chat_key=CTX.chat_key,
            plugin=plugin,
            prompt="Generate report",
            on_terminal=handle_task_complete,  # Terminal callback
        )
    assert capsys.readouterr().out == "✅ Task succeeded: Processing complete\n   Result data: {'result': 'success'}\n"


@plugin.mount_async_task("trigger")
async def trigger_task(handle: AsyncTaskHandle, how: str) -> AsyncIterator[TaskCtl]:
    """Ends the way ``how`` says, for the seed's table of callback trigger conditions."""
    if how == "success":
        yield TaskCtl.success("Built", data={"url": "u"})
    elif how == "fail":
        yield TaskCtl.fail("Broke")
    elif how == "cancel":
        yield TaskCtl.cancel("Gave up")
    elif how == "raise":
        raise RuntimeError("boom")
    else:
        await trio.sleep_forever()


@pytest.mark.parametrize(
    ("how", "printed"),
    [
        ("success", "✅ Task succeeded: Built\n   Result data: {'url': 'u'}\n"),
        ("fail", "❌ Task failed: Broke\n"),
        ("cancel", "⚠️ Task cancelled: Gave up\n"),
        ("raise", "❌ Task failed: boom\n"),
        ("external cancel", "⚠️ Task cancelled: "),
    ],
)
async def test_callback_trigger_conditions(how: str, printed: str, capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[TaskCtl] = []

    def on_terminal(ctl: TaskCtl) -> None:
        calls.append(ctl)
        handle_task_complete(ctl)

    async with open_task_manager():
        await task.start("trigger", "T", CTX.chat_key, plugin, how, on_terminal=on_terminal)
        if how == "external cancel":
            await trio.testing.wait_all_tasks_blocked()
            assert await task.cancel("trigger", "T") is True
        await trio.testing.wait_all_tasks_blocked()
        state = task.get_state("trigger", "T")
    assert len(calls) == 1
    assert state is calls[0]
    assert capsys.readouterr().out.startswith(printed)


# -- Terminal callbacks: practical example -----------------------------------------------------------------
#
# Complete example: the WebApp development task. The seed's body uses a name `url` that it never defines;
# it stands here for the address the developer loop deployed to, a module-level name, so that the body is
# copied unchanged.

url = "https://apps.example.org/todo"
IMPOSSIBLE = "impossible"


async def run_developer_loop(requirement: str) -> tuple[bool, str]:
    """A fake developer loop: a minute of (virtual) work, then success unless the requirement is impossible."""
    await trio.sleep(60)
    if IMPOSSIBLE in requirement:
        return False, "the requirement cannot be built"
    return True, url


@plugin.mount_async_task("webapp_dev")
async def webapp_development_task(
    handle: AsyncTaskHandle,
    requirement: str,
    task_id: str,
) -> AsyncGenerator[TaskCtl, None]:
    """WebApp development async task"""
    yield TaskCtl.report_progress("🚀 Starting development...", 0)

    # Execute development
    success, result = await run_developer_loop(requirement)

    if success:
        yield TaskCtl.report_progress("📦 Compiling...", 70)
        yield TaskCtl.success("Deployment successful", data={"url": url})
    else:
        yield TaskCtl.fail(f"Development failed: {result}")


async def create_dev_task(_ctx: FakeCtx, requirement: str) -> str:
    """Create development task"""
    task_id = f"DEV_{int(time.time())}"

    def _on_terminal(ctl: TaskCtl) -> None:
        """Auto-notify on task completion"""
        if ctl.signal == TaskSignal.SUCCESS:
            url = ctl.data.get("url", "")
            msg = f"✅ Dev task complete!\n🔗 {url}"
        else:
            msg = f"❌ Dev task failed: {ctl.message}"

        # The one behavioural change: the seed sends the message with `asyncio.create_task(...)`, which
        # has no equivalent in Trio (there is no ambient event loop to spawn into). The callback records
        # the message with the fake message service instead.
        message_service.push_system_message(
            chat_key=_ctx.chat_key,
            agent_messages=msg,
            trigger_agent=True,
        )

    # The seed also passes `task_id=task_id` a second time, a SyntaxError in Python ("keyword argument
    # repeated"); it is left out, and `start` fills the body's `task_id` parameter from its own argument.
    await task.start(
        task_type="webapp_dev",
        task_id=task_id,
        chat_key=_ctx.chat_key,
        plugin=plugin,
        requirement=requirement,
        on_terminal=_on_terminal,
    )

    return f"Task started: {task_id}"


def started_id(reply: str, prefix: str) -> str:
    match = re.fullmatch(rf"Task started: ({prefix}_\d+)", reply)
    assert match is not None, reply
    return match[1]


async def test_create_dev_task_pushes_the_url_on_success(
    autojump_clock: trio.testing.MockClock, task_manager: TaskManager
) -> None:
    task_id = started_id(await create_dev_task(CTX, "A todo app"), "DEV")
    assert task.get_running_tasks() == [f"webapp_dev:{task_id}"]
    assert message_service.pushed == []
    await trio.sleep(3600)
    assert task.get_state("webapp_dev", task_id) == TaskCtl.success("Deployment successful", data={"url": url})
    assert message_service.pushed == [PushedMessage("chat-42", f"✅ Dev task complete!\n🔗 {url}", True)]


async def test_create_dev_task_pushes_the_failure(
    autojump_clock: trio.testing.MockClock, task_manager: TaskManager
) -> None:
    task_id = started_id(await create_dev_task(CTX, f"An {IMPOSSIBLE} app"), "DEV")
    await trio.sleep(3600)
    assert task.get_state("webapp_dev", task_id) == TaskCtl.fail("Development failed: the requirement cannot be built")
    assert message_service.pushed == [
        PushedMessage("chat-42", "❌ Dev task failed: Development failed: the requirement cannot be built", True)
    ]


# -- Complete example: start the WebApp task ---------------------------------------------------------------------

_task_ids = itertools.count(1)


def generate_task_id() -> str:
    return f"WEBAPP_{next(_task_ids)}"


async def create_webapp_task(
    _ctx: FakeCtx,
    requirement: str,
) -> str:
    """Create WebApp development task"""
    task_id = generate_task_id()

    # Start async task (non-blocking)
    # The seed passes `task_id=task_id` twice, a SyntaxError in Python; the duplicate is left out and
    # `start` fills the body's `task_id` parameter from its own argument.
    await task.start(
        task_type="webapp_dev",
        task_id=task_id,
        chat_key=_ctx.chat_key,
        plugin=plugin,
        requirement=requirement,
    )

    return f"Task started: {task_id}"


async def test_webapp_task_runs_in_the_background_then_deploys(
    autojump_clock: trio.testing.MockClock, task_manager: TaskManager
) -> None:
    started_at = trio.current_time()
    task_id = started_id(await create_webapp_task(CTX, "A todo app"), "WEBAPP")
    assert trio.current_time() == started_at, "start does not wait for the task"
    assert task.is_running("webapp_dev", task_id)
    assert handle_of("webapp_dev", task_id).chat_key == "chat-42"
    assert task.get_state("webapp_dev", task_id) == TaskCtl.report_progress("🚀 Starting development...", 0)
    await trio.sleep(3600)
    assert not task.is_running("webapp_dev", task_id)
    assert task.get_state("webapp_dev", task_id) == TaskCtl.success("Deployment successful", data={"url": url})


async def test_webapp_task_fails_when_development_fails(
    autojump_clock: trio.testing.MockClock, task_manager: TaskManager
) -> None:
    task_id = started_id(await create_webapp_task(CTX, f"An {IMPOSSIBLE} app"), "WEBAPP")
    await trio.sleep(3600)
    assert task.get_state("webapp_dev", task_id) == TaskCtl.fail("Development failed: the requirement cannot be built")


async def test_webapp_task_reports_compiling_before_success(autojump_clock: trio.testing.MockClock) -> None:
    assert await run_task(plugin, "webapp_dev", requirement="A todo app") == [
        TaskCtl.report_progress("🚀 Starting development...", 0),
        TaskCtl.report_progress("📦 Compiling...", 70),
        TaskCtl.success("Deployment successful", data={"url": url}),
    ]


# -- Best practices 1: task design -----------------------------------------------------------------------------------


@plugin.mount_async_task("phased")
async def phased_task(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
    # ✅ Recommended: Clear task phases
    yield TaskCtl.report_progress("📥 Downloading resources...", 20)
    yield TaskCtl.report_progress("🔄 Processing...", 60)
    yield TaskCtl.report_progress("💾 Saving...", 90)


async def test_phased_progress_then_success_on_return() -> None:
    ctls = await run_task(plugin, "phased")
    assert [(ctl.message, ctl.progress) for ctl in ctls[:-1]] == [
        ("📥 Downloading resources...", 20),
        ("🔄 Processing...", 60),
        ("💾 Saving...", 90),
    ]
    assert ctls[-1] == TaskCtl.success(), "a body that returns without a terminal succeeds"


# -- Best practices 2: error handling ---------------------------------------------------------------------------------


@plugin.mount_async_task("api_call")
async def api_call_task(handle: AsyncTaskHandle, external_api: Callable[[], Awaitable[Any]]) -> AsyncIterator[TaskCtl]:
    try:
        result = await external_api()
        yield TaskCtl.success("Done", data=result)
    except TimeoutError:
        yield TaskCtl.fail("API timeout")
    except Exception as e:
        yield TaskCtl.fail(f"Error: {e}")


async def api_times_out() -> Any:
    await trio.sleep(30)
    raise TimeoutError


async def api_breaks() -> Any:
    raise ValueError("bad JSON")


async def api_answers() -> Any:
    await trio.sleep(1)
    return {"rows": 3}


@pytest.mark.parametrize(
    ("external_api", "terminal"),
    [
        (api_times_out, TaskCtl.fail("API timeout")),
        (api_breaks, TaskCtl.fail("Error: bad JSON")),
        (api_answers, TaskCtl.success("Done", data={"rows": 3})),
    ],
)
async def test_error_handling(
    autojump_clock: trio.testing.MockClock, external_api: Callable[[], Awaitable[Any]], terminal: TaskCtl
) -> None:
    assert await run_task(plugin, "api_call", external_api) == [terminal]


# -- Best practices 3: resource cleanup ----------------------------------------------------------------------


@plugin.on_disabled()
async def cleanup() -> None:
    count = await task.stop_all()
    if count > 0:
        logger.info(f"Stopped {count} tasks")


async def test_disabling_the_plugin_stops_its_running_tasks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="my_async_plugin")
    endings: list[TaskCtl] = []
    async with open_task_manager():
        for task_id in ("A1", "A2"):
            await task.start(
                "approval_task", task_id, CTX.chat_key, plugin, prompt="Deploy?", on_terminal=endings.append
            )
        await trio.testing.wait_all_tasks_blocked()
        await plugin.disable()
        assert task.get_running_tasks() == [], "disable() returns once the tasks have ended"
        assert [ctl.signal for ctl in endings] == [TaskSignal.CANCEL, TaskSignal.CANCEL]
    assert len(endings) == 2
    assert "Stopped 2 tasks" in caplog.messages


# -- Best practices 4: concurrency control ------------------------------------------------------------------


MAX_CONCURRENT_TASKS = 3


def concurrency_recipe(plugin: Plugin) -> Callable[[FakeCtx, str], Any]:
    """The seed's `start_task`, for a plugin whose `my_task` runs until its "done" wait point is notified."""

    async def start_task(_ctx: FakeCtx, name: str) -> str:
        # The seed never defines `task_id`; it is derived from `name`, and contains "my_plugin" so that the
        # seed's filter `"my_plugin" in t` (t is "task_type:task_id") counts the task.
        task_id = f"my_plugin_{name}"
        active = len([t for t in task.get_running_tasks() if "my_plugin" in t])
        if active >= MAX_CONCURRENT_TASKS:
            raise ValueError(f"Max concurrent tasks reached ({MAX_CONCURRENT_TASKS})")

        await task.start("my_task", task_id, _ctx.chat_key, plugin, name)
        return f"Task started: {task_id}"

    return start_task


my_plugin = Plugin(name="My Plugin", module_name="my_plugin")


@my_plugin.mount_async_task("my_task")
async def long_task(handle: AsyncTaskHandle, name: str) -> AsyncIterator[TaskCtl]:
    await handle.wait("done")
    yield TaskCtl.success(f"{name} done")


async def test_concurrency_control_refuses_the_fourth_running_task(task_manager: TaskManager) -> None:
    start_task = concurrency_recipe(my_plugin)
    for name in ("a", "b", "c"):
        assert await start_task(CTX, name) == f"Task started: my_plugin_{name}"
    with pytest.raises(ValueError, match=re.escape("Max concurrent tasks reached (3)")):
        await start_task(CTX, "d")
    assert len(task.get_running_tasks()) == 3
    handle_of("my_task", "my_plugin_a").notify("done")
    await trio.testing.wait_all_tasks_blocked()
    assert await start_task(CTX, "d") == "Task started: my_plugin_d", "a slot is free once a task ends"
    assert task.get_state("my_task", "my_plugin_a") == TaskCtl.success("a done")


# -- Best practices 5 and the FAQ: terminal callback notes --------------------------------------------------


async def test_callback_hands_async_work_to_a_nursery() -> None:
    """Trio's form of the seed's advice: a sync callback that starts the async work elsewhere.

    The seed's `asyncio.create_task(send_notification(ctl))` becomes `nursery.start_soon(...)`.
    """
    sent: list[TaskCtl] = []

    async def send_notification(ctl: TaskCtl) -> None:
        await trio.sleep(0)
        sent.append(ctl)

    async with trio.open_nursery() as nursery:

        def _on_terminal(ctl: TaskCtl) -> None:
            nursery.start_soon(send_notification, ctl)

        async with open_task_manager():
            await task.start("my_task", "T", CTX.chat_key, plugin, prompt="p", on_terminal=_on_terminal)
    assert sent == [TaskCtl.success("Processing complete", data={"result": "success"})]


# -- FAQ: a task that waits for user confirmation ---------------------------------------------------------------------


@plugin.mount_async_task("approval_task")
async def task_with_approval(handle: AsyncTaskHandle, prompt: str) -> AsyncIterator[TaskCtl]:
    yield TaskCtl.report_progress("⏳ Waiting for approval...", 50)

    # Wait for external notify() call
    approved = await handle.wait("approval", timeout=3600)

    if approved:
        yield TaskCtl.success("Approved")
    else:
        yield TaskCtl.fail("Approval timeout or rejected")


async def run_approval(answer: Callable[[AsyncTaskHandle], object], after: float) -> tuple[list[TaskCtl], float]:
    """Start the approval task, call ``answer(handle)`` ``after`` seconds later; return the endings and the end time."""
    endings: list[TaskCtl] = []
    ended_at: list[float] = []

    def on_terminal(ctl: TaskCtl) -> None:
        endings.append(ctl)
        ended_at.append(trio.current_time())

    async with open_task_manager():
        started_at = trio.current_time()
        handle = await task.start(
            "approval_task", "A1", CTX.chat_key, plugin, prompt="Deploy?", on_terminal=on_terminal
        )
        await trio.sleep(after)
        assert task.get_state("approval_task", "A1") == TaskCtl.report_progress("⏳ Waiting for approval...", 50)
        answer(handle)
        await trio.sleep(7200)
        assert not task.is_running("approval_task", "A1")
        final_state = task.get_state("approval_task", "A1")
    assert len(ended_at) == 1
    assert final_state is endings[0]
    return endings, ended_at[0] - started_at


async def test_approval_approved(autojump_clock: trio.testing.MockClock) -> None:
    endings, took = await run_approval(lambda handle: handle.notify("approval", True), after=600)
    assert endings == [TaskCtl.success("Approved")]
    assert took == 600


async def test_approval_rejected(autojump_clock: trio.testing.MockClock) -> None:
    endings, took = await run_approval(lambda handle: handle.notify("approval", False), after=600)
    assert endings == [TaskCtl.fail("Approval timeout or rejected")]
    assert took == 600


async def test_approval_times_out_after_an_hour(autojump_clock: trio.testing.MockClock) -> None:
    endings, took = await run_approval(lambda handle: None, after=3599)
    assert endings == [TaskCtl.fail("Approval timeout or rejected")]
    assert took == 3600
