"""``python -m trio_tasks demo``: a simulated agent chat, run for real on trio_tasks.

This module holds the scenario: the demo plugin's task bodies, the scripted
chat, and the terminal each task is meant to reach. The views (plain lines,
or a live ``rich`` view) live in :mod:`trio_tasks._demo_view`; they learn
about the tasks only from a ``manager.watch()`` stream.

The task bodies use real durations (a 1 s retry backoff, a 5 s
``task_timeout``); ``--speed`` runs the whole program on a :class:`ScaledClock`
whose seconds pass ``speed`` times faster than real ones.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from typing import Any, final

import attrs
import trio

from ._ctl import TaskCtl, TaskSignal
from ._demo_view import DemoView, LiveView, PlainView, can_draw_live
from ._handle import AgentNotice, AsyncTaskHandle
from ._manager import TaskManager, open_task_manager
from ._plugin import Plugin
from ._retry import RetryPolicy
from ._runner import leaves

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

__all__ = ["EXPECTED", "DemoResult", "ScaledClock", "main", "run_demo"]

CHAT = "demo-chat"
PHOTOS = ("hero.png", "pricing.png", "team.png", "logo.png")

plugin = Plugin(name="Demo Studio", module_name="demo_studio", description="Background work for the demo agent")


def _url(task_id: str) -> str:
    return f"https://apps.example.org/{task_id.lower()}"


@plugin.mount_async_task("webapp_dev")
async def webapp_dev(handle: AsyncTaskHandle, requirement: str, task_id: str) -> AsyncIterator[TaskCtl]:
    """Builds a web app in phases; quietly tells the agent when a preview is up."""
    phases = [("Analyzing requirements", 5), ("Generating code", 25), ("Compiling", 55), ("Running tests", 75)]
    for message, percent in [*phases, ("Deploying to staging", 90)]:
        yield TaskCtl.report_progress(f"{message}...", percent)
        await trio.sleep(1.6)
        if message == "Generating code":
            await handle.notify_agent(f"a preview of {requirement} is up at {_url(task_id)}/preview", trigger=False)
    yield TaskCtl.success("Deployed to staging", data={"url": _url(task_id)})


@plugin.mount_async_task("video_render")
async def video_render(handle: AsyncTaskHandle, scene: str, frames: int = 48) -> AsyncIterator[TaskCtl]:
    """Renders frame after frame; when asked to stop, it finishes the frame and yields its own CANCEL."""
    for frame in range(frames):
        if handle.is_cancelled:  # a cancel with a grace period asks first: stop at a clean point
            yield TaskCtl.cancel(f"Stopped cleanly after frame {frame} of {frames}")
            return
        yield TaskCtl.report_progress(f"Rendering {scene}: frame {frame + 1}/{frames}", 100 * frame / frames)
        await trio.sleep(0.25)
    yield TaskCtl.success("Rendered", data={"file": f"{scene}.mp4"})


@plugin.mount_async_task("thumbnail", max_concurrent=2)
async def thumbnail(handle: AsyncTaskHandle, photo: str, seconds: float = 3.0) -> AsyncIterator[TaskCtl]:
    """Makes a thumbnail; at most two run at once, the others wait in line."""
    for percent in (0, 25, 50, 75):
        yield TaskCtl.report_progress(f"Scaling {photo}...", percent)
        await trio.sleep(seconds / 4)
    yield TaskCtl.success(f"Saved {photo.rsplit('.', 1)[0]}_thumb.png")


@plugin.mount_async_task(
    "flaky_api", retry=RetryPolicy(attempts=3, backoff=1.0, factor=2.0, retry_on=(ConnectionError,))
)
async def flaky_api(
    handle: AsyncTaskHandle, endpoint: str, calls: Iterator[int], fails: int = 2
) -> AsyncIterator[TaskCtl]:
    """Calls an API that answers 503 the first ``fails`` times; the retry policy runs it again."""
    call = next(calls)  # 1, 2, 3...: the same iterator is passed to every attempt
    yield TaskCtl.report_progress(f"Calling {endpoint}...", 20)
    await trio.sleep(1.0)
    if call <= fails:
        raise ConnectionError(f"{endpoint} answered 503 Service Unavailable")
    yield TaskCtl.report_progress("Parsing the forecast...", 70)
    await trio.sleep(0.5)
    yield TaskCtl.success("Weather data synced", data={"endpoint": endpoint})


@plugin.mount_async_task("db_migration")
async def db_migration(handle: AsyncTaskHandle, tables: int) -> AsyncIterator[TaskCtl]:
    """Migrates table after table: slower than the ``task_timeout`` it is started with."""
    for table in range(tables):
        yield TaskCtl.report_progress(f"Migrating table {table + 1}/{tables}...", 100 * table / tables)
        await trio.sleep(1.5)
    yield TaskCtl.success(f"Migrated {tables} tables")


@plugin.mount_async_task("approval")
async def approval(handle: AsyncTaskHandle, what: str) -> AsyncIterator[TaskCtl]:
    """Asks the user through the agent, waits for the answer (a notify), then does it."""
    yield TaskCtl.report_progress(f"Waiting for approval to {what}", 0)
    await handle.notify_agent(f"Shall I {what}? Say yes to go ahead.", trigger=True)
    approved = await handle.wait("approval", timeout=60)
    if not approved:
        yield TaskCtl.fail(f"Not approved: {what}")
        return
    for message, percent in (("Publishing...", 40), ("Warming up caches...", 80)):
        yield TaskCtl.report_progress(message, percent)
        await trio.sleep(1.0)
    yield TaskCtl.success(f"Approved and done: {what}")


@plugin.mount_async_task("transcode", max_concurrent=5)
async def transcode(handle: AsyncTaskHandle, file: str, seconds: float, broken: bool) -> AsyncIterator[TaskCtl]:
    """One of the ``--tasks N`` extra tasks: five run at once; a broken file fails near the end."""
    steps = 5
    for step in range(steps):
        yield TaskCtl.report_progress(f"Transcoding {file}...", 100 * step / steps)
        await trio.sleep(seconds / steps)
        if broken and step == steps - 2:
            raise ValueError(f"{file}: unreadable frame at {100 * (step + 1) // steps}%")
    yield TaskCtl.success(f"Saved {file.rsplit('.', 1)[0]}.webm")


EXPECTED: dict[str, TaskSignal] = {
    "webapp_dev:DEV_1": TaskSignal.SUCCESS,
    "video_render:VID_1": TaskSignal.CANCEL,  # the user cancels it with a grace period
    **{f"thumbnail:TH_{n}": TaskSignal.SUCCESS for n in range(1, len(PHOTOS) + 1)},
    "flaky_api:API_1": TaskSignal.SUCCESS,  # fails twice, succeeds on attempt 3
    "db_migration:MIG_1": TaskSignal.FAIL,  # runs past its task_timeout
    "approval:OK_1": TaskSignal.SUCCESS,  # the user approves
}
"""The terminal each task of the default script is meant to reach (``--tasks N`` adds more)."""


@final
@attrs.frozen
class Extra:
    """One extra ``transcode`` task of ``--tasks N``."""

    task_id: str
    file: str
    seconds: float
    broken: bool


def extras(count: int, seed: int) -> list[Extra]:
    """``count`` extra tasks: durations of 1.5 to 4 s, one in five broken, all drawn from ``seed``."""
    rng = random.Random(seed)
    width = len(str(count))
    return [
        Extra(f"T{n:0{width}d}", f"clip_{n:0{width}d}.mov", round(rng.uniform(1.5, 4.0), 2), rng.random() < 0.2)
        for n in range(1, count + 1)
    ]


@final
@attrs.define
class DemoResult:
    """What a demo run did: the terminal each task was meant to reach, and the one it reached.

    Attributes:
        expected: ``"task_type:task_id"`` -> the intended terminal signal.
        terminals: ``"task_type:task_id"`` -> the terminal TaskCtl its ``on_terminal`` received.
        seed: the seed the extra tasks were drawn from.
    """

    expected: dict[str, TaskSignal] = attrs.Factory(dict)
    terminals: dict[str, TaskCtl] = attrs.Factory(dict)
    seed: int = 0

    @property
    def outcomes(self) -> dict[str, TaskSignal]:
        """``"task_type:task_id"`` -> the terminal signal it reached."""
        return {key: ctl.signal for key, ctl in self.terminals.items()}

    @property
    def as_scripted(self) -> bool:
        """True if every task reached the terminal the script intends."""
        return self.outcomes == self.expected

    def summary(self) -> str:
        """One line: all as scripted (with counts), or which tasks were not."""
        if self.as_scripted:
            counts = {signal: list(self.outcomes.values()).count(signal) for signal in TaskSignal}
            detail = ", ".join(f"{n} {signal.value}" for signal, n in counts.items() if n)
            return f"all {len(self.expected)} tasks reached their scripted terminal ({detail})"
        wrong = [
            f"{key}: expected {signal.value}, got {self.outcomes[key].value if key in self.outcomes else 'nothing'}"
            for key, signal in self.expected.items()
            if self.outcomes.get(key) is not signal
        ]
        return "NOT as scripted: " + "; ".join(wrong)


_VERB = {TaskSignal.SUCCESS: "is done", TaskSignal.FAIL: "failed", TaskSignal.CANCEL: "was cancelled"}


def _detail(ctl: TaskCtl) -> str:
    text = ctl.message
    if isinstance(ctl.data, dict) and "url" in ctl.data:
        text += f" ({ctl.data['url']})"
    if ctl.attempt is not None and ctl.attempt > 1:
        text += f", on attempt {ctl.attempt}"
    return text


@final
class _Scenario:
    """The scripted chat: the user asks, the agent starts tasks and keeps answering."""

    def __init__(self, view: DemoView, extra: list[Extra], result: DemoResult) -> None:
        self.view = view
        self.extra = extra
        self.result = result
        self.t0 = trio.current_time()
        self._unannounced: set[str] = set()
        self._announced = trio.Event()

    def user(self, text: str) -> None:
        self.view.chat("user", text)

    def agent(self, text: str) -> None:
        self.view.chat("agent", text)

    async def at(self, seconds: float) -> None:
        """Sleep until ``seconds`` after the start of the demo."""
        await trio.sleep_until(self.t0 + seconds)

    def on_notice(self, notice: AgentNotice) -> None:
        """The manager's ``on_agent_notice``: a notice that asks for a reaction is said to the user."""
        key = f"{notice.task_type}:{notice.task_id}"
        if notice.trigger:
            self.agent(f"{key} asks: {notice.message}")
        else:
            self.view.chat("note", f"{key}: {notice.message}")

    async def start(
        self, manager: TaskManager, task_type: str, task_id: str, expect: TaskSignal, **kwargs: Any
    ) -> None:
        """Start a task whose terminal, once reached, the agent announces in the chat."""
        key = f"{task_type}:{task_id}"
        self.result.expected[key] = expect
        self._unannounced.add(key)
        await manager.start(task_type, task_id, CHAT, plugin, on_terminal=self._announcer(key), **kwargs)

    def _announcer(self, key: str) -> Callable[[TaskCtl], Awaitable[None]]:
        async def announce(ctl: TaskCtl) -> None:
            """An async ``on_terminal``: record the outcome, then post a notice into the chat."""
            self.result.terminals[key] = ctl
            try:
                await trio.sleep(0.2)  # the agent takes a moment to write it up
                self.agent(f"Update: {key} {_VERB[ctl.signal]}: {_detail(ctl)}")
            finally:
                self._unannounced.discard(key)
                if not self._unannounced:
                    self._announced.set()

        return announce

    async def run(self, manager: TaskManager, nursery: trio.Nursery) -> None:
        """The chat script; returns once every task has ended and been announced."""
        start = partial(self.start, manager)
        self.user("Build me a todo web app, please.")
        await start("webapp_dev", "DEV_1", TaskSignal.SUCCESS, requirement="a todo app")
        self.agent("On it: webapp_dev:DEV_1 builds it in the background. What else?")
        await self.at(1.0)
        self.user("Render the intro video too.")
        await start("video_render", "VID_1", TaskSignal.CANCEL, scene="intro")
        self.agent("Rendering the intro (video_render:VID_1).")
        await self.at(2.0)
        self.user(f"And thumbnails for the {len(PHOTOS)} product photos.")
        for n, photo in enumerate(PHOTOS, 1):
            await start("thumbnail", f"TH_{n}", TaskSignal.SUCCESS, photo=photo)
        self.agent(f"{len(PHOTOS)} thumbnails started; two are made at a time, the others wait in line.")
        if self.extra:
            self.user(f"Also transcode the {len(self.extra)} uploaded clips.")
            for job in self.extra:
                expect = TaskSignal.FAIL if job.broken else TaskSignal.SUCCESS
                await start("transcode", job.task_id, expect, file=job.file, seconds=job.seconds, broken=job.broken)
            self.agent(f"{len(self.extra)} transcodes started, five at a time.")
        await self.at(3.0)
        self.user("Sync the latest weather data as well.")
        await start("flaky_api", "API_1", TaskSignal.SUCCESS, endpoint="weather.example.org", calls=itertools.count(1))
        self.agent("Syncing (flaky_api:API_1); that API is flaky, so it retries up to 3 times.")
        await self.at(4.0)
        self.user("Migrate the database, but give up if it takes more than 5 seconds.")
        await start("db_migration", "MIG_1", TaskSignal.FAIL, tables=6, task_timeout=5)
        self.agent("Migrating (db_migration:MIG_1) with a 5 s deadline.")
        await self.at(5.0)
        self.user("What's running?")
        self.agent(_running(manager))
        await self.at(6.0)
        self.user("How is the app going?")
        state = manager.get_state("webapp_dev", "DEV_1")
        self.agent(f"webapp_dev:DEV_1 is at {state.progress or 0:.0f}%: {state.message}" if state else "No news yet.")
        await self.at(6.5)
        await start("approval", "OK_1", TaskSignal.SUCCESS, what="publish the todo app to production")
        await self.at(7.0)
        self.user("Actually, stop the video render.")
        nursery.start_soon(partial(manager.cancel, "video_render", "VID_1", grace=2))
        self.agent("Stopping video_render:VID_1 at its next clean frame (2 s grace).")
        await self.at(10.0)
        self.user("Yes, publish it.")
        handle = manager.get_handle("approval", "OK_1")
        if handle is not None:
            handle.notify("approval", True)
        self.agent("Thanks, publishing now (approval:OK_1).")
        await self._announced.wait()
        self.agent("All background work has ended. Anything else?")


def _running(manager: TaskManager) -> str:
    """The agent's answer to "what's running?"."""
    infos = [info for info in manager.list_tasks() if info.status != "ended"]
    queued = sum(info.status == "queued" for info in infos)
    names = [f"{info.task_type}:{info.task_id}" for info in infos[:6]]
    more = f" and {len(infos) - len(names)} more" if len(infos) > len(names) else ""
    return f"{len(infos) - queued} running, {queued} queued: {', '.join(names)}{more}."


async def _feed(manager: TaskManager, view: DemoView, *, task_status: trio.TaskStatus[None]) -> None:
    """Hand every event of every task to the view; ends once the manager has closed."""
    async with manager.watch() as events:
        task_status.started()
        async for event in events:
            view.task_event(event)


async def run_demo(*, tasks: int = 0, seed: int | None = None, view: DemoView | None = None) -> DemoResult:
    """Run the scripted chat on a real task manager; return what each task was meant to do and did.

    ``tasks`` extra ``transcode`` tasks are drawn from ``seed`` (a random one
    if None, shown in the chat). ``view`` defaults to plain lines on stdout.
    Under ``trio.testing.MockClock(autojump_threshold=0)`` it runs at once::

        result = trio.run(run_demo, clock=trio.testing.MockClock(autojump_threshold=0))
        assert result.as_scripted
    """
    view = view if view is not None else PlainView(partial(print, flush=True))
    seed = seed if seed is not None else random.randrange(1_000_000)
    result = DemoResult(seed=seed)
    async with trio.open_nursery() as outer:
        view.begin(trio.current_time())
        outer.start_soon(view.run)
        try:
            scenario = _Scenario(view, extras(tasks, seed), result)
            if tasks:
                view.chat("demo", f"{tasks} extra tasks drawn from seed {seed} (--seed {seed} repeats them)")
            # The feed's nursery is outside the manager's block: the watch stream ends once the manager closed.
            async with trio.open_nursery() as nursery, open_task_manager(on_agent_notice=scenario.on_notice) as manager:
                await nursery.start(partial(_feed, manager, view))
                await scenario.run(manager, nursery)
            view.chat("demo", result.summary())
        finally:
            view.close()
    return result


@final
class ScaledClock(trio.abc.Clock):
    """The real clock, running ``speed`` times faster: a trio second lasts ``1 / speed`` real seconds.

    With ``speed=1`` it keeps real time.

        trio.run(main, clock=ScaledClock(20))   # a 20 s script ends after 1 s
    """

    def __init__(self, speed: float) -> None:
        self._speed = speed
        self._origin = time.perf_counter()

    def start_clock(self) -> None:
        self._origin = time.perf_counter()

    def current_time(self) -> float:
        return (time.perf_counter() - self._origin) * self._speed

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return (deadline - self.current_time()) / self._speed


def main(
    *,
    speed: float = 1.0,
    tasks: int = 0,
    seed: int | None = None,
    plain: bool = False,
    clock: trio.abc.Clock | None = None,
) -> int:
    """Run the demo; return the process exit code: 0 if every task reached its scripted terminal,
    1 if one did not or stdout could not be written, 130 if interrupted. (With no
    stdout at all, started with it closed, nothing is written: the outcome alone counts.)

    The live view is drawn when stdout is a terminal, ``rich`` is installed
    and ``plain`` is False; otherwise plain lines are printed. ``clock``
    replaces the :class:`ScaledClock` (tests pass a MockClock).
    """
    view: DemoView = (
        LiveView(speed=speed) if not plain and can_draw_live(sys.stdout) else PlainView(partial(print, flush=True))
    )
    # The demo shows every outcome itself; keep the library's failure and retry logs quiet while it runs.
    library_logger = logging.getLogger("trio_tasks")
    level = library_logger.level
    library_logger.setLevel(logging.CRITICAL)
    try:
        result = trio.run(partial(run_demo, tasks=tasks, seed=seed, view=view), clock=clock or ScaledClock(speed))
    except BaseException as exc:
        if _only(exc, KeyboardInterrupt):
            if sys.stdout is not None:
                sys.stdout.write("\ninterrupted\n")
            return 130
        if _only(exc, BrokenPipeError):  # stdout was closed early (`... | head`): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        if _only(exc, OSError):  # stdout cannot be written (a full disk): say so, without a traceback
            error = next(leaves(exc))  # (Trio's nurseries nest it)
            print(f"trio_tasks demo: cannot write the output: {error}", file=sys.stderr)
            return 1
        raise
    finally:
        library_logger.setLevel(level)
    return 0 if result.as_scripted else 1


def _only(exc: BaseException, kind: type[BaseException]) -> bool:
    """True if ``exc`` is a ``kind``, or a group of nothing else (as Trio's nurseries wrap it)."""
    if isinstance(exc, BaseExceptionGroup):
        matching, rest = exc.split(kind)
        return matching is not None and rest is None
    return isinstance(exc, kind)
