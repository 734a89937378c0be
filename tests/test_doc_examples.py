"""The documentation's examples run, and print what the pages say they print.

Every code example of the pages is a file in ``docs/examples/``, shown with ``literalinclude``
(short ``>>>`` and ``testcode`` snippets are run by Sphinx's doctest builder instead). An example
that prints has its output in ``docs/examples/output/NAME.txt``, which its page shows too: the
tests here run each example (on a MockClock where it only sleeps, so an hour-long wait takes no
time) and compare. After changing an example on purpose, rewrite the outputs with::

    UPDATE_DOC_OUTPUT=1 .venv/bin/python -m pytest tests/test_doc_examples.py

The examples of the docstrings (the API reference) are fragments, not programs: they are parsed,
and every method, attribute and keyword argument they use on the public classes must exist.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import itertools
import json
import os
import re
import runpy
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio
import trio.testing

import trio_tasks
import trio_tasks.testing
from trio_tasks import open_task_manager

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
OUTPUT = EXAMPLES / "output"
UPDATE = bool(os.environ.get("UPDATE_DOC_OUTPUT"))


def load(name: str) -> ModuleType:
    """Import ``docs/examples/NAME.py`` as a fresh module (its plugin is a new one each time)."""
    spec = importlib.util.spec_from_file_location(f"doc_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_output(name: str, printed: str) -> None:
    """``printed`` must be the output the page shows, ``docs/examples/output/NAME.txt``."""
    path = OUTPUT / f"{name}.txt"
    if UPDATE:
        path.write_text(printed)
    assert path.exists(), f"{path} is missing; write it with UPDATE_DOC_OUTPUT=1"
    assert printed == path.read_text(), f"{name}.py no longer prints what {path.name} shows"


def on_mock_clock(name: str) -> None:
    module = load(name)
    trio.run(module.main, clock=trio.testing.MockClock(autojump_threshold=0))


# -- examples that only sleep: run on a MockClock ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["tutorial_1", "tutorial_2", "tutorial_3", "tutorial_4", "tutorial_5", "limits", "deadlines_retries"],
)
def test_example_prints_what_its_page_shows(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    on_mock_clock(name)
    check_output(name, capsys.readouterr().out)


def test_shutdown_example_stops_gracefully_on_sigterm(capsys: pytest.CaptureFixture[str]) -> None:
    module = load("shutdown")

    async def run_then_signal() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(module.main)
            await trio.sleep(3.5)  # the render is in its 4th frame
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL, "the example is not listening yet"
            os.kill(os.getpid(), signal.SIGTERM)

    async def guarded() -> None:
        with trio.fail_after(1000):  # virtual seconds: a missed signal fails instead of hanging
            await run_then_signal()

    trio.run(guarded, clock=trio.testing.MockClock(autojump_threshold=0))
    check_output("shutdown", capsys.readouterr().out)


# -- examples that need real time ---------------------------------------------------------------------------------


def test_thread_example(capsys: pytest.CaptureFixture[str]) -> None:
    module = load("threads")
    trio.run(module.main)
    check_output("threads", capsys.readouterr().out)


def readme_example() -> str:
    """The README's Python example (its first ``python`` code block)."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"```python\n(.*?)```", readme, re.DOTALL)
    assert match is not None, "README.md has no python example"
    return match[1]


def test_readme_example_is_the_tested_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert readme_example() == (EXAMPLES / "readme.py").read_text(), "README.md and docs/examples/readme.py differ"
    runpy.run_path(str(EXAMPLES / "readme.py"), run_name="__main__")  # it calls trio.run itself
    check_output("readme", capsys.readouterr().out)


def test_readme_links_exist() -> None:
    links = re.findall(r"\]\((docs/[^)]+)\)", (ROOT / "README.md").read_text())
    assert links
    assert [link for link in links if not (ROOT / link).exists()] == []


# -- the server-sent events example: a real server on a free port -------------------------------------------------


async def http(port: int, method: str, path: str) -> tuple[str, dict[str, str], bytes]:
    """One request; the status line, headers and body (the server closes each connection)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        while chunk := await stream.receive_some():
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return status, headers, body


def parse_sse(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.decode().split("\n\n"):
        if block:
            fields = dict(line.split(": ", 1) for line in block.split("\n"))
            events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_sse_example_streams_a_render_to_the_browser() -> None:
    module = load("sse_progress")
    module.FRAME_SECONDS = 0.1  # 1 s for the 10 frames: ample time to subscribe after the POST
    with trio.fail_after(10):
        async with open_task_manager() as manager, trio.open_nursery() as server:
            [listener] = await server.start(module.serve, manager, 0)
            port = listener.socket.getsockname()[1]

            status, headers, page = await http(port, "GET", "/")
            assert (status, headers["Content-Type"]) == ("HTTP/1.1 200 OK", "text/html; charset=utf-8")
            assert b"new EventSource(" in page

            assert (await http(port, "POST", "/renders/R1"))[0] == "HTTP/1.1 202 Accepted"
            assert (await http(port, "POST", "/renders/R1"))[0] == "HTTP/1.1 409 Conflict"
            status, headers, body = await http(port, "GET", "/renders/R1/events")
            assert (status, headers["Content-Type"]) == ("HTTP/1.1 200 OK", "text/event-stream")
            events = parse_sse(body)
            *progress, (end, last) = events
            assert end == "success"
            assert last == {"message": "Rendered scene R1", "progress": None}
            assert progress, "the stream begins with the render's current state"
            assert all(kind == "progress" for kind, _ in progress)
            percents = [data["progress"] for _, data in progress]
            assert percents == sorted(percents)
            assert progress[-1][1] == {"message": "Rendering scene R1: frame 10 of 10", "progress": 90.0}

            _, _, again = await http(port, "GET", "/renders/R1/events")  # an ended render: its outcome
            assert parse_sse(again) == [(end, last)]
            assert (await http(port, "GET", "/renders/R2/events"))[0] == "HTTP/1.1 404 Not Found"
            assert (await http(port, "GET", "/nope"))[0] == "HTTP/1.1 404 Not Found"
            server.cancel_scope.cancel()


# -- the testing how-to: its test file passes ------------------------------------------------------------------------


def test_testing_example_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLES / "test_deployer.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b4 passed\b", result.stdout), result.stdout


# -- every example is shown on a page and run here -----------------------------------------------------------------

RUN_HERE = {
    "readme",
    "tutorial_1",
    "tutorial_2",
    "tutorial_3",
    "tutorial_4",
    "tutorial_5",
    "limits",
    "deadlines_retries",
    "shutdown",
    "threads",
    "sse_progress",
    "test_deployer",
}


def included_files() -> set[Path]:
    """Every file the pages include or offer for download."""
    files = set()
    for page in DOCS.rglob("*.rst"):
        if "_build" in page.parts:
            continue
        for match in re.finditer(r"\.\. literalinclude:: (\S+)|:download:`[^`<]*<([^>]+)>`", page.read_text()):
            files.add((page.parent / (match[1] or match[2])).resolve())
    return files


def test_every_example_is_run_here_and_shown_on_a_page() -> None:
    examples = {path.stem for path in EXAMPLES.glob("*.py")}
    assert examples == RUN_HERE
    included = included_files()
    missing = [str(path) for path in included if not path.exists()]
    assert missing == [], "pages include files that do not exist"
    assert {path.resolve() for path in EXAMPLES.glob("*.py")} - included == set(), "an example is on no page"
    outputs = {path.resolve() for path in OUTPUT.glob("*.txt")}
    assert outputs - included == set(), "an output file is on no page"


# -- code in the pages: excerpts of what runs ------------------------------------------------------------------------


def page_code_blocks() -> Iterator[tuple[str, str]]:
    """(where, code) of each ``code-block:: python`` of the pages, except quotes of the seed (captioned "Seed")."""
    for page in sorted(DOCS.rglob("*.rst")):
        if "_build" in page.parts:
            continue
        lines = page.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.strip() != ".. code-block:: python":
                continue
            rest = lines[number + 1 :]
            options = list(itertools.takewhile(lambda text: text.strip().startswith(":"), rest))
            if any(option.strip().startswith(":caption: Seed") for option in options):
                continue
            indented = itertools.takewhile(lambda text: not text.strip() or text.startswith(" "), rest[len(options) :])
            body = list(indented)
            yield f"{page.relative_to(DOCS)}:{number + 1}", textwrap.dedent("\n".join(body)).strip("\n")


def executed_lines() -> list[list[str]]:
    """The stripped, non-blank lines of every file whose code runs: the examples and the tests."""
    files = [*EXAMPLES.glob("*.py"), *(ROOT / "tests").glob("*.py")]
    return [[line.strip() for line in path.read_text().splitlines() if line.strip()] for path in files]


PAGE_BLOCKS = list(page_code_blocks())


@pytest.mark.parametrize(("where", "code"), PAGE_BLOCKS, ids=[where for where, _ in PAGE_BLOCKS])
def test_code_shown_in_a_page_is_an_excerpt_of_code_that_runs(where: str, code: str) -> None:
    wanted = [line.strip() for line in code.splitlines() if line.strip()]
    assert wanted, f"empty code block at {where}"
    for lines in executed_lines():
        for start in range(len(lines) - len(wanted) + 1):
            if lines[start : start + len(wanted)] == wanted:
                return
    pytest.fail(f"the code at {where} is not in any example or test: show it with literalinclude, or test it")


# -- docstring examples: they use only what exists --------------------------------------------------------------------

# Names the docstring fragments use for instances of the public classes.
INSTANCES: dict[str, type] = {
    "task": trio_tasks.TaskManager,
    "manager": trio_tasks.TaskManager,
    "task_manager": trio_tasks.TaskManager,
    "handle": trio_tasks.AsyncTaskHandle,
    "portal": trio_tasks.TaskPortal,
    "plugin": trio_tasks.Plugin,
    "policy": trio_tasks.RetryPolicy,
    "ctl": trio_tasks.TaskCtl,
    "info": trio_tasks.TaskInfo,
    "event": trio_tasks.TaskEvent,
    "events": trio_tasks.TaskEvents,
    "notice": trio_tasks.AgentNotice,
}
CALLABLES: dict[str, Any] = {
    **{name: getattr(trio_tasks, name) for name in trio_tasks.__all__},
    "run_task": trio_tasks.testing.run_task,
}


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


def accepts(func: Any, keywords: list[str]) -> list[str]:
    """The keywords ``func`` does not accept."""
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return []
    names = {p.name for p in parameters if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    return [keyword for keyword in keywords if keyword not in names]


def api_errors(code: str) -> list[str]:
    errors = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in INSTANCES:
            cls = INSTANCES[node.value.id]
            if not hasattr(cls, node.attr):
                errors.append(f"{node.value.id}.{node.attr}: {cls.__name__} has no {node.attr!r}")
        if not isinstance(node, ast.Call):
            continue
        keywords = [keyword.arg for keyword in node.keywords if keyword.arg is not None]
        func = node.func
        target = None
        if isinstance(func, ast.Name) and func.id in CALLABLES:
            target, shown = CALLABLES[func.id], func.id
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner = INSTANCES.get(func.value.id) or CALLABLES.get(func.value.id)
            if owner is not None and hasattr(owner, func.attr):
                target, shown = getattr(owner, func.attr), f"{func.value.id}.{func.attr}"
        if target is not None:
            errors += [f"{shown}() takes no {keyword}=" for keyword in accepts(target, keywords)]
    return errors


def test_the_docstrings_have_examples() -> None:
    assert len(SNIPPETS) > 30


@pytest.mark.parametrize(("where", "code"), SNIPPETS, ids=[where for where, _ in SNIPPETS])
def test_docstring_example_parses_and_uses_only_what_exists(where: str, code: str) -> None:
    try:  # a fragment of a program, top-level awaits allowed...
        compile(code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    except SyntaxError:  # ...or of a task body (yield, return)
        compile("async def body():\n" + textwrap.indent(code, "    "), where, "exec", dont_inherit=True)
        code = "async def body():\n" + textwrap.indent(code, "    ")
    assert api_errors(code) == []
