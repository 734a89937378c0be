"""The documentation's examples run, and print what the pages say they print.

Every code example of the pages is a file in ``docs/examples/``, shown with ``literalinclude``
(short ``>>>`` and ``testcode`` snippets are run by Sphinx's doctest builder instead). An example
that prints has its output in ``docs/examples/output/NAME.txt``, which its page shows too: the
tests here run each example (on a MockClock where it only sleeps, so an hour-long wait takes no
time) and compare. After changing an example on purpose, rewrite the outputs with::

    UPDATE_DOC_OUTPUT=1 .venv/bin/python -m pytest tests/test_doc_examples.py

The examples of the docstrings (the API reference) run in ``tests/test_docstring_examples.py``.
"""

from __future__ import annotations

import importlib.util
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
    assert re.search(r"\b5 passed\b", result.stdout), result.stdout


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
