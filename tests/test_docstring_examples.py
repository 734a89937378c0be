"""Every example of the docstrings (the API reference) runs, and does what its text says.

The ``>>>`` examples are doctests: Sphinx's doctest builder runs them. The others are ``::``
literal blocks, fragments written as if inside an ``async def`` with a task manager open. Each runs
here in a ``trio.run`` of its own on a MockClock (an hour-long wait takes no time), in a namespace
where ``manager`` is an open task manager (``task`` refers to it too), ``portal`` is its
TaskPortal, ``plugin`` is a plugin "Video" with the sample task types below (except those the
fragment mounts itself), every name of ``trio_tasks`` is imported with ``trio`` and ``run_task``,
and small stubs stand for what the fragments assume (``render_frames``, ``send_to_browser``,
``gui_main_loop``, ``chat_key``).

How a fragment runs follows from its code: one that calls ``trio.run`` is a whole program and runs
as one; one that ``yield``s is a piece of a task body and runs as the body of task ``example:E1``
(its ``handle`` is that task's own); one that defines ``test_*`` functions has them called with the
fixtures they ask for; any other runs as it is (top-level ``await`` allowed). ``HOW`` adds what a
fragment needs beyond that: tasks started before it, the task body it is a piece of when that does
not show, code run after it that drives it or checks it, and how the docstring says things end.

Comments in the fragments are claims, and checked: ``expr  # value`` asserts the value,
``print(x)  # text`` the printed text (a trailing ``...`` abbreviates it) and
``statement  # raises Error`` the exception.
"""

from __future__ import annotations

import ast
import inspect
import io
import math
import re
import textwrap
import tokenize
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from types import CodeType, SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing

import trio_tasks
import trio_tasks.testing
from trio_tasks import AsyncTaskHandle, Plugin, TaskCtl, TaskManager, TaskPortal, TaskSignal, open_task_manager
from trio_tasks.testing import run_task

# -- the examples: every ``::`` block of the public docstrings ---------------------------------------------------------


def documented() -> Iterator[tuple[str, str]]:
    """(name, docstring) of the package, every public name and their public members, and trio_tasks.testing."""
    yield "trio_tasks", trio_tasks.__doc__ or ""
    yield "trio_tasks.testing", trio_tasks.testing.__doc__ or ""
    for name in ("run_task", "task_manager"):
        yield f"trio_tasks.testing.{name}", inspect.getdoc(getattr(trio_tasks.testing, name)) or ""
    for name in trio_tasks.__all__:
        obj = getattr(trio_tasks, name)
        yield name, inspect.getdoc(obj) or ""
        if inspect.isclass(obj):
            for member_name, member in vars(obj).items():
                if not member_name.startswith("_") and (
                    inspect.isfunction(member) or isinstance(member, (property, classmethod, staticmethod))
                ):
                    yield f"{name}.{member_name}", inspect.getdoc(member) or ""


def literal_blocks(doc: str) -> Iterator[str]:
    """The ``::`` literal blocks of a docstring (``>>>`` examples are doctests: Sphinx runs them)."""
    lines = inspect.cleandoc(doc).splitlines()
    for number, line in enumerate(lines):
        if not line.rstrip().endswith("::"):
            continue
        block: list[str] = []
        for following in lines[number + 1 :]:
            if following.strip() and not following.startswith((" ", "\t")):
                break
            block.append(following)
        code = textwrap.dedent("\n".join(block)).strip("\n")
        assert code, f"'::' is followed by no indented block in {lines[number]!r}"
        assert not code.startswith(">>>"), f"a doctest after '::' is a literal block, never run: {code[:40]!r}"
        yield code


SNIPPETS = [(f"{name} #{n}", code) for name, doc in documented() for n, code in enumerate(literal_blocks(doc), 1)]


def test_the_docstrings_have_examples() -> None:
    assert len(SNIPPETS) > 30


# -- the sample plugin -------------------------------------------------------------------------------------------------

FRAMES = 4
FRAME_SECONDS = 300  # a render takes 20 minutes


async def render(handle: AsyncTaskHandle, scene: str) -> AsyncIterator[TaskCtl]:
    """Renders frame after frame; asked to stop (a cancel with a grace period), it stops at once with its own CANCEL."""
    for frame in range(1, FRAMES + 1):
        yield TaskCtl.report_progress(f"Rendering {scene}: frame {frame} of {FRAMES}", (frame - 1) * 100 // FRAMES)
        with trio.move_on_after(FRAME_SECONDS):
            await handle.cancel_requested()
        if handle.is_cancelled:
            yield TaskCtl.cancel(f"Render stopped at frame {frame}")
            return
    yield TaskCtl.success(f"Rendered {scene}", data={"file": f"{scene}.mp4"})


async def approval(handle: AsyncTaskHandle, prompt: str) -> AsyncIterator[TaskCtl]:
    """Waits up to an hour on the wait point "approval" (the seed's approval task)."""
    yield TaskCtl.report_progress("Waiting for approval...", 50)
    approved = await handle.wait("approval", timeout=3600)
    yield TaskCtl.success("Approved") if approved else TaskCtl.fail("Approval timeout or rejected")


async def my_task(handle: AsyncTaskHandle, prompt: str) -> AsyncIterator[TaskCtl]:
    yield TaskCtl.report_progress(f"Reading: {prompt}", 10)
    await trio.sleep(60)
    yield TaskCtl.report_progress(f"Writing: {prompt}", 50)
    await trio.sleep(60)
    yield TaskCtl.success(f"Done: {prompt}")


async def webapp_dev(handle: AsyncTaskHandle, requirement: str) -> AsyncIterator[TaskCtl]:
    yield TaskCtl.report_progress(f"Building: {requirement}", 0)
    await trio.sleep(600)
    yield TaskCtl.success("Deployed", data={"url": "https://example.org/app"})


SAMPLE_TYPES = {
    "render": render,
    "approval": approval,
    "approval_task": approval,
    "my_task": my_task,
    "webapp_dev": webapp_dev,
}


def sample_plugin(types: tuple[str, ...] | None, code: str) -> Plugin:
    """The plugin "Video" with the sample ``types`` (default: all of them but those ``code`` mounts itself)."""
    plugin = Plugin(name="Video", module_name="video")
    mounted_by_code = set(re.findall(r'mount_async_task\(\s*"([^"]+)"', code))
    for task_type, body in SAMPLE_TYPES.items():
        if (task_type in types) if types is not None else (task_type not in mounted_by_code):
            plugin.mount_async_task(task_type)(body)
    return plugin


# -- stubs for what the fragments assume -------------------------------------------------------------------------------


async def render_frames() -> None:
    for _ in range(FRAMES):
        await trio.sleep(FRAME_SECONDS)


async def send_to_browser(task_id: str, message: str, progress: float | None) -> None:
    print(task_id, message, progress)
    await trio.lowlevel.checkpoint()


@contextmanager
def clock_stopped() -> Iterator[None]:
    """While other threads work, the mock clock must not jump: the tasks would race ahead in virtual time."""
    clock = trio.lowlevel.current_clock()
    assert isinstance(clock, trio.testing.MockClock)
    threshold, clock.autojump_threshold = clock.autojump_threshold, math.inf
    try:
        yield
    finally:
        clock.autojump_threshold = threshold


async def in_thread(func: Any, *args: Any) -> Any:
    with clock_stopped():
        return await trio.to_thread.run_sync(func, *args)


def namespace(manager: TaskManager, plugin: Plugin) -> dict[str, Any]:
    def gui_main_loop(portal: TaskPortal) -> None:  # a GUI whose user starts one render
        portal.start("render", "R1", "chat-1", ns["plugin"], scene="intro")

    ns: dict[str, Any] = {name: getattr(trio_tasks, name) for name in trio_tasks.__all__}
    ns.update(
        __name__="docstring_example",
        trio=trio,
        trio_tasks=trio_tasks,
        run_task=run_task,
        manager=manager,
        portal=manager.portal(),
        plugin=plugin,
        chat_key="chat-1",
        render_frames=render_frames,
        send_to_browser=send_to_browser,
        gui_main_loop=gui_main_loop,
        # for HOW's code, and the checks of the comments
        in_thread=in_thread,
        SimpleNamespace=SimpleNamespace,
        _raises=pytest.raises,
        _equals=equals,
        _prints=prints,
    )
    return ns


# -- comments are claims -----------------------------------------------------------------------------------------------


def equals(value: Any, comment: str) -> None:
    assert value == ast.literal_eval(comment), f"the comment says {comment}, the value is {value!r}"


def prints(value: Any, comment: str) -> None:
    print(value)
    text = str(value)
    if comment.endswith("..."):
        assert text.startswith(comment[:-3]), f"the comment says it prints {comment!r}, it prints {text!r}"
    else:
        assert text == comment, f"the comment says it prints {comment!r}, it prints {text!r}"


class Claims(ast.NodeTransformer):
    """Turns ``expr  # value``, ``print(x)  # text`` and ``statement  # raises Error`` into checks."""

    def __init__(self, source: str) -> None:
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
        self.comments = {tok.start[0]: tok.string[1:].strip() for tok in tokens if tok.type == tokenize.COMMENT}

    def visit_Expr(self, node: ast.Expr) -> ast.stmt:
        comment = self.comments.get(node.end_lineno or node.lineno)
        if comment is None:
            return node
        if raised := re.fullmatch(r"raises (\w+)", comment):
            check = ast.Call(ast.Name("_raises", ast.Load()), [ast.Name(raised[1], ast.Load())], [])
            return ast.copy_location(ast.With([ast.withitem(check)], [node]), node)
        call = node.value
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print":
            [value] = call.args
            return ast.copy_location(ast.Expr(self.call("_prints", value, comment)), node)
        try:
            ast.literal_eval(comment)
        except (ValueError, SyntaxError):
            return node  # prose
        return ast.copy_location(ast.Expr(self.call("_equals", node.value, comment)), node)

    @staticmethod
    def call(name: str, value: ast.expr, comment: str) -> ast.Call:
        return ast.Call(ast.Name(name, ast.Load()), [value, ast.Constant(comment)], [])


def compiled(source: str, where: str) -> CodeType:
    tree = ast.fix_missing_locations(Claims(source).visit(ast.parse(source)))
    return compile(tree, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


# -- how each example runs ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class How:
    """What an example needs beyond its namespace, and what its docstring says happens."""

    setup: tuple[str, ...] = ()  # code run first, in the same namespace
    body: str | None = None  # it is a piece of this task body (FRAGMENT marks where); default for code that yields
    thread: bool = False  # it works with other threads: the clock stands still; code that never awaits runs in one
    until_closed: bool = False  # it reads until the manager closes: it runs beside `then`, then the manager closes
    types: tuple[str, ...] | None = None  # the sample task types of `plugin`, if not the default
    then: str = ""  # code run after it (beside it if until_closed): drives what it started, checks what it did
    ends: tuple[str, TaskCtl | TaskSignal] | None = None  # "type:id" of a task, and how it then ends
    prints: str | None = None  # all it prints


R1 = 'handle = await task.start("render", "R1", "chat-1", plugin, scene="intro")'
A1 = 'handle = await task.start("approval", "A1", "chat-1", plugin, prompt="Deploy?")'
R1_ENDED = 'await run_task(plugin, "render", task_id="R1", chat_key="chat-1", scene="intro")'
CLEANUP = "@plugin.on_disabled()\nasync def cleanup():\n    await task.stop_all(plugin=plugin)"
APPROVED = ("approval:A1", TaskCtl.success("Approved"))
A1_CANCELLED = ("approval:A1", TaskSignal.CANCEL)
R1_STOPPED = ("render:R1", TaskCtl.cancel("Render stopped at frame 1"))  # cancelled with a grace period
FRAME_1 = TaskCtl.report_progress("Rendering intro: frame 1 of 4", 0)
RENDER_STEPS = [f"Rendering intro: frame {frame} of {FRAMES}" for frame in range(1, FRAMES + 1)]

HOW = {
    "trio_tasks #1": How(prints="Hello, Trio!\n"),
    "AsyncTaskHandle #1": How(ends=APPROVED),
    "AsyncTaskHandle.is_cancelled #1": How(
        body="await trio.sleep(1)  # a step of work\nFRAGMENT",
        then='await manager.cancel("example", "E1", grace=10)',
        ends=("example:E1", TaskCtl.cancel("Stopped at a clean point")),
    ),
    "AsyncTaskHandle.cancel_requested #1": How(
        then='await manager.cancel("example", "E1", grace=30)',
        ends=("example:E1", TaskCtl.cancel("Render stopped on request")),
    ),
    "AsyncTaskHandle.wait #1": How(
        body="FRAGMENT\nreturn approved",
        then='manager.get_handle("example", "E1").notify("approval", True)',
        ends=("example:E1", TaskCtl.success(data=True)),
    ),
    "AsyncTaskHandle.notify #1": How(setup=(A1,), ends=APPROVED),
    "AsyncTaskHandle.cancel_wait #1": How(setup=(A1,), ends=A1_CANCELLED),
    "AsyncTaskHandle.cancel_all #1": How(setup=(A1,), ends=A1_CANCELLED),
    "AsyncTaskHandle.notify_agent #1": How(
        body="FRAGMENT",
        then="assert await manager.agent_notices().receive() == "
        'AgentNotice("example", "E1", "chat-1", "The preview is ready: https://...", trigger=True)',
        ends=("example:E1", TaskCtl.success()),
    ),
    "Plugin #1": How(
        then='await task.start("render", "R1", "chat-1", plugin, scene="intro")\nawait plugin.disable()',
        ends=("render:R1", TaskCtl.success("Rendered", data={"file": "intro.mp4"})),
    ),
    "Plugin.mount_async_task #1": How(
        then='await task.start("my_task", "T1", "chat-1", plugin, prompt="Summarize")',
        ends=("my_task:T1", TaskCtl.success("T1 done")),
    ),
    "Plugin.on_disabled #1": How(setup=(R1,), then="await plugin.disable()", ends=("render:R1", TaskSignal.CANCEL)),
    "Plugin.disable #1": How(setup=(CLEANUP, R1), ends=("render:R1", TaskSignal.CANCEL)),
    "RetryPolicy #1": How(
        then='await task.start("fetch", "F1", "chat-1", plugin, url="https://example.org")',
        ends=("fetch:F1", TaskCtl(TaskSignal.SUCCESS, "Done", attempt=1)),
    ),
    "TaskAlreadyRunning #1": How(
        setup=(R1,), then='assert task.get_handle("render", "R1") not in (None, handle)  # a new run'
    ),
    "TaskEvents #1": How(
        setup=(R1,),
        prints="".join(f"{25 * n}% {step}\n" for n, step in enumerate(RENDER_STEPS))
        + "success: Rendered intro\n0 updates were skipped\n",
    ),
    "TaskInfo #1": How(
        setup=(R1, A1),
        prints="render:R1 running 0s Rendering intro: frame 1 of 4\napproval:A1 running 0s Waiting for approval...\n",
    ),
    "TaskManager #1": How(prints=f"{FRAME_1}\n"),
    "TaskManager.start #1": How(ends=("webapp_dev:DEV_1", TaskSignal.SUCCESS), prints="TaskSignal.SUCCESS\n"),
    "TaskManager.is_running #1": How(then='assert task.is_running("render", "R1")'),
    "TaskManager.get_handle #1": How(setup=(A1,), ends=APPROVED),
    "TaskManager.get_state #1": How(setup=(R1_ENDED,), prints="R1 ended: success Rendered intro\n"),
    "TaskManager.get_running_tasks #1": How(setup=(R1, A1)),
    "TaskManager.list_tasks #1": How(setup=(R1,), prints=f"R1 running {FRAME_1}\n"),
    "TaskManager.cancel #1": How(setup=(R1,), ends=R1_STOPPED),
    "TaskManager.stop_all #1": How(setup=(R1,), then="await plugin.disable()", ends=R1_STOPPED),
    "TaskManager.watch #1": How(
        setup=(R1,),
        until_closed=True,
        ends=("render:R1", TaskSignal.SUCCESS),
        prints="".join(f"R1 {step} {25 * n}\n" for n, step in enumerate(RENDER_STEPS)) + "R1 Rendered intro None\n",
    ),
    "TaskManager.portal #1": How(thread=True, then='assert task.is_running("render", "R1")'),
    "TaskManager.agent_notices #1": How(
        setup=(R1,),
        until_closed=True,
        then='await handle.notify_agent("Scene 1 is ready")',
        prints="[R1] Scene 1 is ready\n",
    ),
    "TaskPortal #1": How(
        setup=(A1,), then='await in_thread(on_webhook, SimpleNamespace(task_id="A1", approved=True))', ends=APPROVED
    ),
    "TaskPortal.start #1": How(thread=True, then='assert task.get_handle("render", "R1") is handle'),
    "TaskPortal.cancel #1": How(setup=(R1,), thread=True, ends=R1_STOPPED),
    "TaskPortal.stop_all #1": How(setup=(R1,), thread=True, then="assert stopped == 1"),
    "TaskPortal.get_state #1": How(
        setup=(R1,), thread=True, then='assert state == TaskCtl.report_progress("Rendering intro: frame 1 of 4", 0)'
    ),
    "TaskPortal.is_running #1": How(setup=(R1,), thread=True, then="assert running is True"),
    "TaskPortal.get_running_tasks #1": How(
        setup=(R1, A1), thread=True, then='assert tasks == ["render:R1", "approval:A1"]'
    ),
    "TaskPortal.notify #1": How(setup=(A1,), thread=True, ends=APPROVED),
    "TaskPortal.cancel_wait #1": How(setup=(A1,), thread=True, ends=A1_CANCELLED),
    "TaskTimeout #1": How(
        then="await trio.sleep(601)  # a render takes 20 minutes\n"
        'state = task.get_state("render", "R1")\n'
        "assert state.signal is TaskSignal.FAIL and isinstance(state.data, TaskTimeout)"
    ),
    "UnknownTaskType #1": How(types=("render",)),
    "WaitCancelled #1": How(
        then='manager.get_handle("example", "E1").cancel_wait("approval")',
        ends=("example:E1", TaskCtl.fail("The approval request was withdrawn")),
    ),
    "open_task_manager #1": How(  # `manager` is the fragment's own, closed: it gave DEV_1 5 seconds, then cancelled it
        then='assert manager.get_state("webapp_dev", "DEV_1") == TaskCtl.cancel("Cancelled: the task manager closed")'
    ),
}


def test_how_names_only_examples_that_exist() -> None:
    assert set(HOW) - {where for where, _ in SNIPPETS} == set()


# -- running them ------------------------------------------------------------------------------------------------------


async def run(code: CodeType, ns: dict[str, Any], *, thread: bool = False) -> None:
    """Run compiled code in ``ns``: awaiting it if it awaits, in a worker thread if ``thread`` and it does not."""
    if thread and not code.co_flags & inspect.CO_COROUTINE:
        await in_thread(eval, code, ns)
        return
    result = eval(code, ns)
    if inspect.iscoroutine(result):
        await result


async def run_fragment(where: str, code: str, how: How, ns: dict[str, Any], manager: TaskManager) -> None:
    body = how.body
    if body is None:
        try:
            compile(code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        except SyntaxError:  # yield, return: a piece of a task body
            body = "FRAGMENT"
    if body is not None:
        source = "async def example(handle):\n" + textwrap.indent(body.replace("FRAGMENT", code), "    ")
        await run(compiled(source, where), ns)
        ns["plugin"].mount_async_task("example")(ns["example"])
        await manager.start("example", "E1", "chat-1", ns["plugin"])
        return
    with clock_stopped() if how.thread else nullcontext():
        await run(compiled(code, where), ns, thread=how.thread)
    fixtures = {"task_manager": manager, "autojump_clock": trio.lowlevel.current_clock()}
    for name, test in list(ns.items()):
        if name.startswith("test_") and inspect.iscoroutinefunction(test):
            await test(**{parameter: fixtures[parameter] for parameter in inspect.signature(test).parameters})


async def run_example(where: str, code: str, how: How) -> None:
    with trio.fail_after(24 * 3600):  # virtual seconds: an example that would wait forever fails instead
        async with (
            trio.open_nursery() if how.until_closed else nullcontext() as beside,
            open_task_manager() as manager,
        ):
            ns = namespace(manager, sample_plugin(how.types, code))
            for setup in how.setup:
                await run(compiled(setup, f"{where} (setup)"), ns)
            if how.until_closed:
                beside.start_soon(run_fragment, where, code, how, ns, manager)
            else:
                await run_fragment(where, code, how, ns, manager)
            if how.then:
                await run(compiled(how.then, f"{where} (then)"), ns)
            if how.ends is not None:
                key, expected = how.ends
                task_type, task_id = key.split(":")
                while manager.is_running(task_type, task_id):
                    await trio.sleep(1)
                state = manager.get_state(task_type, task_id)
                assert state is not None
                if isinstance(expected, TaskSignal):
                    assert state.signal is expected, state
                else:
                    assert state == expected


@pytest.mark.parametrize(("where", "code"), SNIPPETS, ids=[where for where, _ in SNIPPETS])
def test_docstring_example_runs(where: str, code: str, capsys: pytest.CaptureFixture[str]) -> None:
    how = HOW.get(where, How())
    if "trio.run(" in code:  # a whole program
        exec(compiled(code, where), {"__name__": "docstring_example"})
    else:
        trio.run(run_example, where, code, how, clock=trio.testing.MockClock(autojump_threshold=0))
    if how.prints is not None:
        assert capsys.readouterr().out == how.prints
