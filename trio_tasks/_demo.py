"""``python -m trio_tasks demo``: a simulated agent chat running background tasks."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import trio

from . import AgentNotice, AsyncTaskHandle, Plugin, TaskCtl, TaskSignal, open_task_manager, task

__all__ = ["run_demo"]

plugin = Plugin(name="Demo Studio", module_name="demo_studio", description="Background work for the demo agent")


@plugin.mount_async_task("webapp_dev")
async def webapp_dev(handle: AsyncTaskHandle, requirement: str, task_id: str) -> AsyncIterator[TaskCtl]:
    """Builds a web app in phases and tells the agent when a preview is up."""
    phases = [("Analyzing requirements", 10), ("Generating code", 40), ("Compiling", 70), ("Deploying", 90)]
    for message, percent in phases:
        yield TaskCtl.report_progress(f"{message}...", percent)
        await trio.sleep(0.4)
        if percent == 40:
            await handle.notify_agent(f"{task_id}: a preview of {requirement!r} is up", trigger=False)
    yield TaskCtl.success("Deployed", data={"url": f"https://apps.example.org/{task_id.lower()}"})


@plugin.mount_async_task("video_render")
async def video_render(handle: AsyncTaskHandle, scene: str) -> AsyncIterator[TaskCtl]:
    """Renders frame batches until done; the user cancels it in the demo."""
    for percent in range(0, 100, 10):
        yield TaskCtl.report_progress(f"Rendering {scene}: {percent}%", percent)
        await trio.sleep(0.3)
    yield TaskCtl.success("Rendered", data={"file": f"{scene}.mp4"})


@plugin.mount_async_task("approval")
async def approval(handle: AsyncTaskHandle, what: str) -> AsyncIterator[TaskCtl]:
    """Waits for the user's approval (a notify) before going ahead."""
    yield TaskCtl.report_progress(f"Waiting for approval: {what}", 50)
    approved = await handle.wait("approval", timeout=30)
    if approved:
        yield TaskCtl.success(f"Approved: {what}")
    else:
        yield TaskCtl.fail(f"Not approved: {what}")


@plugin.mount_async_task("flaky_api")
async def flaky_api(handle: AsyncTaskHandle, endpoint: str) -> AsyncIterator[TaskCtl]:
    """Calls an external API that breaks."""
    yield TaskCtl.report_progress(f"Calling {endpoint}...", 20)
    await trio.sleep(0.6)
    raise ConnectionError(f"{endpoint} answered 503 Service Unavailable")


_ICONS = {TaskSignal.SUCCESS: "done", TaskSignal.FAIL: "FAILED", TaskSignal.CANCEL: "cancelled"}


async def run_demo(speed: float = 1.0, write: Callable[[str], object] = print) -> dict[str, TaskSignal]:
    """Run the scripted chat; return each task's terminal signal by ``type:id``.

    ``speed`` compresses time (2 runs twice as fast).
    """
    started = trio.current_time()
    outcomes: dict[str, TaskSignal] = {}

    def say(who: str, text: str) -> None:
        write(f"[{(trio.current_time() - started) * speed:5.2f}s] {who:<6} {text}")

    async def on_notice(notice: AgentNotice) -> None:
        say("agent", f"<- {notice.task_type}:{notice.task_id} says: {notice.message}")

    def on_terminal(key: str) -> Callable[[TaskCtl], None]:
        def record(ctl: TaskCtl) -> None:
            outcomes[key] = ctl.signal
            say("task", f"{key} {_ICONS[ctl.signal]}: {ctl.message}")
            say("agent", f"(tells the user) {key} ended: {ctl.signal.value}")

        return record

    async def pause(seconds: float) -> None:
        await trio.sleep(seconds / speed)

    async def watch_progress(keys: list[str], done: trio.Event) -> None:
        seen: dict[str, TaskCtl | None] = {}
        while not done.is_set():
            for key in keys:
                task_type, task_id = key.split(":", 1)
                state = task.get_state(task_type, task_id)
                if state is not None and not state.is_terminal and seen.get(key) is not state:
                    seen[key] = state
                    say("task", f"{key} {state.progress:>3}% {state.message}")
            await trio.sleep(0.02 / speed)

    jobs: list[tuple[str, str, str, str, dict[str, Any]]] = [
        ("user", "Build me a todo web app, please.", "webapp_dev", "DEV_1", {"requirement": "a todo app"}),
        ("user", "And render the intro video.", "video_render", "VID_1", {"scene": "intro"}),
        ("user", "Check the weather API too.", "flaky_api", "API_1", {"endpoint": "weather.example.org"}),
        ("agent", "Deploying needs your approval.", "approval", "OK_1", {"what": "deploy the todo app"}),
    ]
    keys = [f"{task_type}:{task_id}" for *_, task_type, task_id, _ in jobs]
    all_ended = trio.Event()
    async with open_task_manager(on_agent_notice=on_notice) as manager, trio.open_nursery() as nursery:
        nursery.start_soon(watch_progress, keys, all_ended)
        for who, text, task_type, task_id, kwargs in jobs:
            say(who, text)
            await manager.start(
                task_type, task_id, "demo-chat", plugin, on_terminal=on_terminal(f"{task_type}:{task_id}"), **kwargs
            )
            say("agent", f"Started {task_type}:{task_id} in the background; still here to chat.")
            await pause(0.25)
        say("user", "What's running?")
        say("agent", f"Running: {', '.join(manager.get_running_tasks())}")
        await pause(0.5)
        say("user", "Actually, cancel the video.")
        await manager.cancel("video_render", "VID_1")
        await pause(0.5)
        say("user", "Yes, go ahead and deploy.")
        handle = manager.get_handle("approval", "OK_1")
        if handle is not None:
            handle.notify("approval", True)
        while manager.get_running_tasks():
            await pause(0.1)
        all_ended.set()
        say("agent", "All background work has ended. Bye!")
    return outcomes


def main(speed: float = 1.0) -> int:
    """Run the demo with real time; return the process exit code."""
    # The demo prints every outcome itself; keep the library's failure logs quiet.
    logging.getLogger("trio_tasks").setLevel(logging.CRITICAL)
    try:
        trio.run(run_demo, speed)
    except KeyboardInterrupt:
        sys.stdout.write("interrupted\n")
        return 130
    return 0
