"""The demo (``python -m trio_tasks demo``) runs its script to the end, every task reaching its intended terminal.

Every run here is on ``MockClock(autojump_threshold=0)``: the ~12 s script takes no real time.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

from trio_tasks import TaskSignal, TaskTimeout
from trio_tasks.__main__ import main as cli_main
from trio_tasks._demo import EXPECTED, DemoResult, extras, main, run_demo
from trio_tasks._demo_view import LiveView, PlainView, can_draw_live

LINE = re.compile(r"^\[ *(\d+\.\d\d)s\] (\w+) +(.*)$")


def run_plain(**options: Any) -> tuple[DemoResult, list[str]]:
    """Run the demo in plain mode on an autojumping clock; return its result and its lines."""
    lines: list[str] = []
    result = trio.run(
        partial(run_demo, view=PlainView(lines.append), **options), clock=trio.testing.MockClock(autojump_threshold=0)
    )
    return result, lines


def parse(line: str) -> tuple[float, str, str]:
    """A plain line's time, speaker (or ``task``) and text."""
    match = LINE.match(line)
    assert match, line
    return float(match[1]), match[2], match[3]


def task_lines(lines: list[str], key: str) -> list[str]:
    return [line for line in lines if f" task   {key} " in line]


def first_index(lines: list[str], key: str, status: str) -> int:
    return next(i for i, line in enumerate(lines) if f" task   {key} " in line and f"% {status} " in line)


@pytest.fixture(scope="module")
def default_run() -> tuple[DemoResult, list[str]]:
    return run_plain()


@pytest.fixture(scope="module")
def big_run() -> tuple[DemoResult, list[str]]:
    return run_plain(tasks=20, seed=1)


def test_every_task_reaches_its_scripted_terminal(default_run: tuple[DemoResult, list[str]]) -> None:
    result, lines = default_run
    assert result.expected == EXPECTED
    assert result.outcomes == EXPECTED
    assert result.as_scripted
    for key, signal in EXPECTED.items():
        status = {TaskSignal.SUCCESS: "done", TaskSignal.FAIL: "failed", TaskSignal.CANCEL: "cancelled"}[signal]
        assert sum(f"% {status} " in line for line in task_lines(lines, key)) == 1, key


def test_every_line_is_timestamped_and_the_run_ends_in_time(default_run: tuple[DemoResult, list[str]]) -> None:
    _, lines = default_run
    times = [parse(line)[0] for line in lines]
    assert times == sorted(times)
    assert times[-1] < 20  # "ends by itself within about 20 seconds" at speed 1
    assert lines[-2].endswith("agent  All background work has ended. Anything else?")
    assert lines[-1].endswith("demo   all 9 tasks reached their scripted terminal (7 success, 1 fail, 1 cancel)")


def test_progress_lines_show_key_percent_status_and_message(default_run: tuple[DemoResult, list[str]]) -> None:
    _, lines = default_run
    assert any(line.endswith("task   webapp_dev:DEV_1      25% running   Generating code...") for line in lines)
    assert task_lines(lines, "webapp_dev:DEV_1")[-1].endswith("100% done      Deployed to staging")


def test_the_flaky_task_is_retried_with_attempt_numbers(default_run: tuple[DemoResult, list[str]]) -> None:
    result, lines = default_run
    terminal = result.terminals["flaky_api:API_1"]
    assert (terminal.signal, terminal.attempt) == (TaskSignal.SUCCESS, 3)
    api = task_lines(lines, "flaky_api:API_1")
    for attempt in (1, 2, 3):
        assert any(line.endswith(f"(attempt {attempt})") for line in api), attempt
    assert any("Attempt 1 of 3 failed: weather.example.org answered 503" in line for line in api)
    assert any("Attempt 2 of 3 failed" in line for line in api)


def test_the_migration_fails_with_task_timeout(default_run: tuple[DemoResult, list[str]]) -> None:
    result, lines = default_run
    terminal = result.terminals["db_migration:MIG_1"]
    assert terminal.signal is TaskSignal.FAIL
    assert isinstance(terminal.data, TaskTimeout)
    assert terminal.data.timeout == 5
    failed = lines[first_index(lines, "db_migration:MIG_1", "failed")]
    assert failed.startswith("[   9.00s]")  # started at 4 s, 5 s deadline


def test_the_video_stops_itself_when_the_user_cancels(default_run: tuple[DemoResult, list[str]]) -> None:
    result, lines = default_run
    terminal = result.terminals["video_render:VID_1"]
    assert terminal.signal is TaskSignal.CANCEL
    assert terminal.message.startswith("Stopped cleanly after frame")  # its own CANCEL, within the grace period
    asked = next(i for i, line in enumerate(lines) if line.endswith("user   Actually, stop the video render."))
    assert first_index(lines, "video_render:VID_1", "cancelled") > asked


def test_the_approval_waits_for_the_user(default_run: tuple[DemoResult, list[str]]) -> None:
    result, lines = default_run
    assert result.terminals["approval:OK_1"].signal is TaskSignal.SUCCESS
    asks = next(i for i, line in enumerate(lines) if "agent  approval:OK_1 asks: Shall I publish" in line)
    yes = next(i for i, line in enumerate(lines) if line.endswith("user   Yes, publish it."))
    assert asks < yes < first_index(lines, "approval:OK_1", "done")
    assert lines[first_index(lines, "approval:OK_1", "done")].startswith("[  12.00s]")


def test_tasks_behind_the_limit_are_queued_before_they_run(default_run: tuple[DemoResult, list[str]]) -> None:
    _, lines = default_run
    for key in ("thumbnail:TH_1", "thumbnail:TH_2"):
        assert not any("% queued " in line for line in task_lines(lines, key))
    for key in ("thumbnail:TH_3", "thumbnail:TH_4"):
        assert first_index(lines, key, "queued") < first_index(lines, key, "running") < first_index(lines, key, "done")
        assert "Queued: task type 'thumbnail' runs at most 2 at once" in lines[first_index(lines, key, "queued")]


def test_terminal_callbacks_and_notices_reach_the_chat(default_run: tuple[DemoResult, list[str]]) -> None:
    _, lines = default_run
    agent = [text for _, who, text in map(parse, lines) if who == "agent"]
    verbs = {TaskSignal.SUCCESS: "is done", TaskSignal.FAIL: "failed", TaskSignal.CANCEL: "was cancelled"}
    for key, signal in EXPECTED.items():
        assert sum(text.startswith(f"Update: {key} {verbs[signal]}: ") for text in agent) == 1, key
    assert "Update: webapp_dev:DEV_1 is done: Deployed to staging (https://apps.example.org/dev_1)" in agent
    assert "Update: flaky_api:API_1 is done: Weather data synced, on attempt 3" in agent
    assert any(
        line.endswith("note   webapp_dev:DEV_1: a preview of a todo app is up at https://apps.example.org/dev_1/preview")
        for line in lines
    )


def test_many_more_tasks_reach_their_terminals(big_run: tuple[DemoResult, list[str]]) -> None:
    result, lines = big_run
    assert len(result.expected) == len(EXPECTED) + 20
    assert result.outcomes == result.expected
    assert {key: signal for key, signal in result.expected.items() if key in EXPECTED} == EXPECTED
    extra = [key for key in result.expected if key.startswith("transcode:")]
    assert {result.expected[key] for key in extra} == {TaskSignal.SUCCESS, TaskSignal.FAIL}  # seed 1 breaks some
    queued = [key for key in extra if any("% queued " in line for line in task_lines(lines, key))]
    assert len(queued) == 15  # five run at once: the other fifteen wait in line first
    for key in queued:
        assert first_index(lines, key, "queued") < first_index(lines, key, "running")
    assert lines[0].endswith("demo   20 extra tasks drawn from seed 1 (--seed 1 repeats them)")
    assert lines[-1].endswith("demo   all 29 tasks reached their scripted terminal (22 success, 6 fail, 1 cancel)")
    assert parse(lines[-1])[0] < 20


def test_a_seed_repeats_the_extra_tasks(big_run: tuple[DemoResult, list[str]]) -> None:
    result, _ = big_run
    again, _ = run_plain(tasks=20, seed=1)
    assert again.expected == result.expected
    assert {key: ctl.message for key, ctl in again.terminals.items()} == {
        key: ctl.message for key, ctl in result.terminals.items()
    }
    assert extras(20, 1) == extras(20, 1) != extras(20, 2)


def test_main_runs_the_plain_demo_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    assert main(tasks=3, seed=7, plain=True, clock=clock) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("demo   3 extra tasks drawn from seed 7 (--seed 7 repeats them)")
    assert re.search(r"demo   all 12 tasks reached their scripted terminal", out[-1])


def test_main_exits_1_when_a_task_missed_its_scripted_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    async def missed(**options: Any) -> DemoResult:
        return DemoResult(expected={"video_render:VID_1": TaskSignal.CANCEL}, terminals={})

    monkeypatch.setattr("trio_tasks._demo.run_demo", missed)
    assert main(plain=True, clock=trio.testing.MockClock(autojump_threshold=0)) == 1


@pytest.mark.parametrize(
    ("redirect", "code", "error"),
    [
        (">&-", 0, ""),  # no stdout at all: nothing to show, the run goes on
        ("> /dev/full", 1, "trio_tasks demo: cannot write the output: [Errno 28] No space left on device"),
    ],
)
def test_a_stdout_that_cannot_be_written_gives_no_traceback(redirect: str, code: int, error: str) -> None:
    command = f"{sys.executable} -m trio_tasks demo --speed 100 {redirect}"
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=120, check=False)
    assert (done.returncode, done.stderr.strip()) == (code, error)


SPEED_RULE = "must be a number from 0.01 to 1000 (20 runs twenty times faster)"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--speed", "0"], f"argument --speed: {SPEED_RULE}, got '0'"),
        (["--speed", "-2"], f"argument --speed: {SPEED_RULE}, got '-2'"),
        (["--speed", "nan"], "got 'nan'"),
        (["--speed", "inf"], "got 'inf'"),
        (["--speed", "1e6"], f"{SPEED_RULE}, got '1e6'"),
        (["--speed", "1e-320"], f"{SPEED_RULE}, got '1e-320'"),
        (["--speed", "fast"], "got 'fast'"),
        (["--tasks", "-1"], "argument --tasks: must be a whole number from 0 to 10,000, got '-1'"),
        (["--tasks", "2.5"], "argument --tasks: must be a whole number from 0 to 10,000, got '2.5'"),
        (["--tasks", "1000000000"], "argument --tasks: must be a whole number from 0 to 10,000, got '1000000000'"),
        (["--seed", "x"], "argument --seed: must be a whole number, got 'x'"),
        (
            ["--seed", "9" * (sys.get_int_max_str_digits() + 1)],
            f"argument --seed: must be a whole number of at most {sys.get_int_max_str_digits()} digits, "
            f"got {sys.get_int_max_str_digits() + 1} digits",
        ),
    ],
)
def test_bad_options_are_argparse_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["demo", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_help_documents_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["demo", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--tasks N", "--speed FACTOR", "--seed SEED", "--plain"):
        assert option in out


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_without_rich_falls_back_to_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # `import rich` now raises ImportError
    hint = io.StringIO()
    assert not can_draw_live(FakeTerminal(), hint)
    assert hint.getvalue().count("\n") == 1
    assert "install rich for the live view (pip install 'trio_tasks[demo]'); printing plain lines" in hint.getvalue()
    assert not can_draw_live(io.StringIO(), hint)  # not a terminal: plain, and no hint
    assert hint.getvalue().count("\n") == 1


def test_a_dumb_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """It cannot redraw: rich would show nothing until the end."""
    monkeypatch.setenv("TERM", "dumb")
    hint = io.StringIO()
    assert not can_draw_live(FakeTerminal(), hint)
    assert hint.getvalue() == ""
    monkeypatch.setenv("TERM", "xterm-256color")
    assert can_draw_live(FakeTerminal(), hint)


def test_the_plain_demo_runs_without_rich() -> None:
    code = (
        "import sys; sys.modules['rich'] = None\n"
        "import trio, trio.testing\n"
        "from trio_tasks._demo import run_demo\n"
        "from trio_tasks._demo_view import PlainView\n"
        "lines = []\n"
        "result = trio.run(lambda: run_demo(view=PlainView(lines.append)),"
        " clock=trio.testing.MockClock(autojump_threshold=0))\n"
        "assert result.as_scripted, result.summary()\n"
        "assert not [name for name in sys.modules if name.startswith('rich.')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_live_view_draws_the_same_run() -> None:
    from rich.console import Console  # the test extra brings the demo's rich

    screen = io.StringIO()
    console = Console(file=screen, width=140, height=40, force_terminal=True, color_system="truecolor")
    result = trio.run(
        partial(run_demo, tasks=5, seed=2, view=LiveView(console=console)),
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    assert result.as_scripted
    drawn = screen.getvalue()
    for text in ("background tasks", "webapp_dev:DEV_1", "transcode:T5", "cancelled", "all 14 tasks reached"):
        assert text in drawn


def test_the_live_view_ends_with_the_verdict_in_full_on_a_narrow_terminal() -> None:
    from rich.console import Console

    screen = io.StringIO()
    console = Console(file=screen, width=80, height=24, force_terminal=True, color_system="truecolor")
    clock = trio.testing.MockClock(autojump_threshold=0)
    result = trio.run(partial(run_demo, view=LiveView(console=console)), clock=clock)
    last = " ".join(" ".join(screen.getvalue().rstrip().splitlines()[-2:]).split())  # (wrapped at 80 columns)
    assert last.endswith(f"demo: {result.summary()}"), last
