"""A Ctrl-C lands wherever the main thread is: Trio raises it there unless the code is KeyboardInterrupt-protected.

trio_tasks marks its own code protected (a Ctrl-C that lands in its bookkeeping
reaches the main task at its next checkpoint instead) and task bodies not (a
Ctrl-C interrupts a body where it is). Without that, a Ctrl-C landing in the
middle of a task's end or of a start lost terminals, hung ``trio.run`` or left
it with a KeyError.
"""

from __future__ import annotations

import compileall
import contextlib
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any

import trio
import trio.testing

import trio_tasks
from trio_tasks import AgentNotice, AsyncTaskHandle, Plugin, RetryPolicy, TaskCtl, open_task_manager
from trio_tasks.testing import run_task

LIBRARY = os.path.dirname(trio_tasks.__file__)
DEMO = os.path.join(LIBRARY, "_demo")

plugin = Plugin(name="Interrupts", module_name="interrupts")


@plugin.mount_async_task("busy")
async def busy(handle: AsyncTaskHandle, seconds: float) -> AsyncIterator[TaskCtl]:
    try:
        yield TaskCtl.report_progress("working", 10)
        await handle.notify_agent("half way")
        await trio.sleep(seconds)
        yield TaskCtl.success("done")
    finally:
        with trio.CancelScope(shield=True):
            await trio.sleep(0.5)


@plugin.mount_async_task("asks")
async def asks(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
    yield TaskCtl.report_progress("asking", 50)
    answer = await handle.wait("answer", timeout=60)
    yield TaskCtl.success(f"got {answer}")


@plugin.mount_async_task("flaky", max_concurrent=1, retry=RetryPolicy(attempts=2, backoff=1))
async def flaky(handle: AsyncTaskHandle) -> None:
    await trio.sleep(1)
    raise ConnectionError("down")


async def scenario(ended: list[str]) -> None:
    """Most of the library at work: limits, retries, watches, waits, notices, cancels, stop_alls, the
    portal, run_task, async callbacks and the close's grace period. ``ended`` gets each task's id as it ends."""

    def ending(task_id: str) -> Callable[[TaskCtl], Awaitable[None]]:
        async def on_terminal(ctl: TaskCtl) -> None:
            ended.append(task_id)
            await trio.sleep(0.25)

        return on_terminal

    async def on_notice(notice: AgentNotice) -> None:
        await trio.sleep(0.1)

    # The watches are fed as tasks go (nobody reads them: a reader's nursery would gather the Ctrl-C in a group).
    async with (
        open_task_manager(grace_period=1, max_concurrent=4, on_agent_notice=on_notice) as manager,
        manager.watch(buffer=4),
        manager.watch("busy", "B1"),
    ):
        start = manager.start
        await start("busy", "B1", "chat", plugin, 2, on_terminal=ending("B1"))
        await start("busy", "B2", "other", plugin, 30, on_terminal=ending("B2"))
        await start("asks", "A", "chat", plugin, on_terminal=ending("A"))
        await start("flaky", "F1", "chat", plugin, on_terminal=ending("F1"))
        await start("flaky", "F2", "chat", plugin, on_terminal=ending("F2"))  # queued behind F1
        portal = manager.portal()
        await trio.to_thread.run_sync(portal.notify, "asks", "A", "answer", 42)
        await run_task(plugin, "busy", 0.5, task_id="R", on_terminal=ending("R"))
        await manager.cancel("busy", "B1", grace=0.5)
        await manager.stop_all(chat_key="other")
        await start("busy", "B3", "chat", plugin, 30, on_terminal=ending("B3"))
        await manager.stop_all()
        await start("busy", "B4", "chat", plugin, 30, on_terminal=ending("B4"))


def test_no_line_of_the_library_runs_where_a_ctrl_c_would_be_raised_in_it() -> None:
    """Every line of trio_tasks that runs in the Trio thread is protected (contextlib's code that enters and
    exits the manager's block too); every line of a body is not."""
    unprotected: set[tuple[str, int]] = set()
    body_lines: dict[int, bool] = {}
    bodies = {busy.__code__, asks.__code__, flaky.__code__}

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        code = frame.f_code
        if code in bodies:
            def in_body(frame: FrameType, event: str, arg: Any) -> Any:
                if event == "line":  # (called in the traced frame: this asks about that frame)
                    body_lines[frame.f_lineno] = trio.lowlevel.currently_ki_protected()
                return in_body

            return in_body
        glue = code.co_filename == contextlib.__file__  # (what asynccontextmanager runs for the library)
        if not (glue or code.co_filename.startswith(LIBRARY)) or code.co_filename.startswith(DEMO):
            return None

        def in_library(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "line" and not trio.lowlevel.currently_ki_protected():
                unprotected.add((os.path.basename(frame.f_code.co_filename), frame.f_lineno))
            return in_library

        return in_library

    ended: list[str] = []

    async def traced() -> None:
        assert threading.current_thread() is threading.main_thread()
        sys.settrace(trace)  # this thread only: the portal's thread runs no code of the library in Trio
        try:
            await scenario(ended)
        finally:
            sys.settrace(None)

    trio.run(traced, clock=trio.testing.MockClock(autojump_threshold=0))
    assert sorted(ended) == ["A", "B1", "B2", "B3", "B4", "F1", "F2", "R"], "the scenario ran to its end"
    assert unprotected == set()
    assert len(body_lines) > 10
    assert not any(body_lines.values()), "a Ctrl-C still interrupts a body where it is"


def test_a_real_ctrl_c_at_any_line_of_the_library_leaves_as_keyboard_interrupt_with_every_terminal() -> None:
    """A real SIGINT raised at the n-th line the library runs (or contextlib for it), for n across the whole
    scenario, each in a new trio.run: each run must leave as KeyboardInterrupt (never hang, never another
    error), and every task that started must have ended once."""
    program = textwrap.dedent(
        f"""
        import collections, contextlib, os, signal, sys
        import trio, trio.testing
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_keyboard_interrupt import LIBRARY, DEMO, scenario
        import trio_tasks._manager

        original_start = trio_tasks._manager.TaskManager.start
        started = []

        async def start(self, task_type, task_id, *args, **kwargs):
            handle = await original_start(self, task_type, task_id, *args, **kwargs)
            started.append(task_id)  # (a Ctrl-C may land in this line too: then it is not listed)
            return handle

        trio_tasks._manager.TaskManager.start = start
        lines = [0]
        at = [0]
        fired = [False]

        def trace(frame, event, arg):
            name = frame.f_code.co_filename
            if not (name == contextlib.__file__ or name.startswith(LIBRARY)) or name.startswith(DEMO):
                return None
            def local(frame, event, arg):
                if event == "line":
                    lines[0] += 1
                    if lines[0] == at[0]:
                        fired[0] = True
                        signal.raise_signal(signal.SIGINT)
                return local
            return local

        async def traced(ended):
            sys.settrace(trace)
            try:
                await scenario(ended)
            finally:
                sys.settrace(None)

        trio.run(traced, [], clock=trio.testing.MockClock(autojump_threshold=0))
        total = lines[0]  # the lines the library runs in the whole scenario
        outcomes = collections.Counter()
        for n in range(1, total, max(1, total // 200)):
            lines[0], at[0], fired[0] = 0, n, False
            started.clear()
            ended = []
            try:
                trio.run(traced, ended, clock=trio.testing.MockClock(autojump_threshold=0))
                # (Trio's order of ready tasks varies: this run may have run fewer lines than the first)
                outcomes["returned with a Ctrl-C" if fired[0] else "never reached"] += 1
            except KeyboardInterrupt:
                outcomes["KeyboardInterrupt"] += 1
            except BaseException as exc:
                print("at line", n, "trio.run raised", repr(exc))
                raise
            ends = collections.Counter(ended)
            assert set(started) <= set(ends) and set(ends.values()) <= {{1}}, (n, started, ended)
        assert outcomes["KeyboardInterrupt"] >= 150 and not outcomes["returned with a Ctrl-C"], outcomes
        print(dict(outcomes))
        """
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_library_is_protected_when_installed_without_its_sources(tmp_path: Path) -> None:
    """A copy of trio_tasks with only .pyc files (as some installers and frozen applications ship it): its
    code is still protected, here the task's end that calls a sync on_terminal."""
    copy = tmp_path / "trio_tasks"
    shutil.copytree(LIBRARY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert compileall.compile_dir(copy, legacy=True, quiet=1)
    for source in copy.glob("*.py"):
        source.unlink()
    program = textwrap.dedent(
        """
        import trio
        import trio_tasks
        from trio_tasks import Plugin, TaskCtl, open_task_manager

        assert trio_tasks.__file__.endswith(".pyc"), trio_tasks.__file__
        plugin = Plugin(name="P", module_name="p")

        @plugin.mount_async_task("t")
        async def body(handle):
            yield TaskCtl.success()

        async def main():
            async with open_task_manager() as manager:
                await manager.start("t", "T", "chat", plugin, on_terminal=lambda ctl: print(
                    "protected:", trio.lowlevel.currently_ki_protected()))

        trio.run(main)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert done.stdout.strip() == "protected: True", done.stdout + done.stderr
