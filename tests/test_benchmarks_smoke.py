"""The benchmark suite runs: every scenario of every implementation, once, at a tiny size.

Benchmarks are not tests: nothing here looks at a time. It checks that each
run did the work it claims (one terminal callback per task, with the expected
signal, which the scenarios also check themselves), so that the suite cannot
rot while the library changes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from benchmarks.__main__ import main
from benchmarks.common import (
    PER_UPDATE,
    PROGRESS,
    PROGRESS_TASKS,
    SIZES,
    SUCCESS,
    BenchmarkError,
    Terminals,
    check_watched,
    default_repeats,
)
from benchmarks.harness import IMPLEMENTATIONS
from benchmarks.report import RESULTS_BEGIN, RESULTS_END, MarkerError, replace_results
from trio_tasks import TaskCtl, TaskSignal

TASKS = 10
UPDATES = 10

RUNS = [(scenario, impl) for scenario, impls in IMPLEMENTATIONS.items() for impl in impls]


@pytest.mark.parametrize(("scenario", "impl"), RUNS, ids=[f"{s}-{i}" for s, i in RUNS])
def test_every_scenario_runs_with_one_callback_per_task(scenario: str, impl: str) -> None:
    per_update = scenario in PER_UPDATE
    size = UPDATES if per_update else TASKS
    sample = IMPLEMENTATIONS[scenario][impl](size)
    tasks = PROGRESS_TASKS if per_update else TASKS
    assert sample.tasks == tasks
    assert sample.callbacks == tasks
    assert sample.units == (PROGRESS_TASKS * UPDATES if per_update else TASKS)
    assert sample.seconds > 0
    assert 0 <= sample.gc_seconds <= sample.seconds
    if scenario == "idle":
        assert sample.bytes_per_task is not None
        assert sample.bytes_per_task > 0
    else:
        assert sample.bytes_per_task is None


def test_a_wrong_callback_count_is_an_error_not_a_number() -> None:
    terminals = Terminals(2, TaskSignal.SUCCESS, lambda: None)
    terminals(TaskCtl.success())
    with pytest.raises(BenchmarkError, match="expected 2 terminal callbacks"):
        terminals.check("one short")
    terminals(TaskCtl.cancel())
    with pytest.raises(BenchmarkError, match="1 with another signal"):
        terminals.check("wrong signal")


def test_watched_scenarios_overflow_the_buffer_and_run_without_asyncio() -> None:
    assert "asyncio" not in IMPLEMENTATIONS["spawn_watched"]
    assert "asyncio" not in IMPLEMENTATIONS["progress_watched"]
    for impl in ("trio_tasks", "floor"):  # 300 updates per task: more than the 256 a watcher buffers
        sample = IMPLEMENTATIONS["progress_watched"][impl](300)
        assert sample.callbacks == PROGRESS_TASKS


def test_a_watcher_that_lost_or_reordered_events_is_an_error() -> None:
    check_watched("ok", [PROGRESS, PROGRESS, SUCCESS], 3, 5)
    with pytest.raises(BenchmarkError, match="read 2 progress events and dropped 2"):
        check_watched("one lost", [PROGRESS, PROGRESS, SUCCESS], 2, 5)
    with pytest.raises(BenchmarkError, match="exactly one SUCCESS event, last"):
        check_watched("terminal first", [SUCCESS, PROGRESS], 0, 1)
    with pytest.raises(BenchmarkError, match="exactly one SUCCESS event, last"):
        check_watched("no terminal", [PROGRESS], 0, 1)
    with pytest.raises(BenchmarkError, match="more than 256"):
        check_watched("unbounded", [PROGRESS] * 300 + [SUCCESS], 0, 300)


def test_the_command_writes_a_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main(["--size", "tiny", "--repeat", "1", "--only", "spawn", "--only", "stop_all", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "spawn" in table
    assert "stop_all" in table
    data = json.loads(out.read_text())
    assert data["scenarios"] == ["spawn", "stop_all"]
    assert {(s["scenario"], s["impl"]) for s in data["series"]} == {
        (scenario, impl) for scenario in ("spawn", "stop_all") for impl in IMPLEMENTATIONS[scenario]
    }
    assert all(len(s["repeats"]) == 1 for s in data["series"])
    assert {row["scenario"] for row in data["rows"]} == {"spawn", "stop_all"}


def test_without_repeat_short_spans_repeat_more_than_long_ones(tmp_path: Path) -> None:
    """The default keeps ``--size large`` within the issue's 10 minutes: 7 repeats up to 10k tasks, 3 at 100k."""
    assert [default_repeats(size) for size in SIZES["large"]] == [7, 7, 3]
    out = tmp_path / "bench.json"
    assert main(["--size", "tiny", "--only", "spawn", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["repeats"] == [7, 7]
    assert all(len(s["repeats"]) == 7 for s in data["series"])


def test_a_scenario_without_asyncio_shows_a_dash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main(["--size", "tiny", "--repeat", "1", "--only", "spawn_watched", "--only", "progress_watched",
                 "--json", str(out)]) == 0
    table = capsys.readouterr().out
    lines = [re.split(r"\s{2,}", line) for line in table.splitlines()
             if line.startswith(("spawn_watched", "progress_watched"))]
    main_rows = [line for line in lines if ">=0.8x floor" in line]
    assert len(main_rows) == 4
    assert all(line[5] == "-" and line[7] == "-" for line in main_rows), "asyncio median and ratio"
    assert any("trio_tasks_unwatched" in line for line in lines)
    data = json.loads(out.read_text())
    assert {s["impl"] for s in data["series"]} == {"trio_tasks", "floor", "trio_tasks_unwatched"}
    for row in data["rows"]:
        assert [t["baseline"] for t in row["targets"]] == ["floor"]
        assert "asyncio" not in row["ratios"]
    assert {s["scenario"] for s in data["scaling"]} == {"spawn_watched", "progress_watched"}


# -- --write-into: the tables between the marker lines of a page -----------------------------------------------------

PAGE_BEFORE = "# Performance\r\n\r\nMachine: µs and “quotes”, CRLF line ends, kept byte for byte.\r\n\r\n"
PAGE_AFTER = "\nThe machine is shared and noisy.\n\n## Targets\n\nNo newline at the end"


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The JSON of one tiny run of spawn (three implementations)."""
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    assert main(["--size", "tiny", "--repeat", "1", "--only", "spawn", "--json", str(path)]) == 0
    return path


def between_markers(text: str) -> str:
    return text.split(RESULTS_BEGIN, 1)[1].split(RESULTS_END, 1)[0]


def test_write_into_replaces_exactly_the_text_between_the_markers(
    tmp_path: Path, bench_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "page.md"
    stale = "| stale | table |\n\nold notes\n"
    page.write_bytes(f"{PAGE_BEFORE}{RESULTS_BEGIN}\r\n{stale}{RESULTS_END}{PAGE_AFTER}".encode())
    assert main(["--from-json", str(bench_json), "--markdown"]) == 0
    markdown_rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert main(["--from-json", str(bench_json), "--write-into", str(page)]) == 0
    written = page.read_bytes()
    head, tail = f"{PAGE_BEFORE}{RESULTS_BEGIN}\r\n".encode(), f"{RESULTS_END}{PAGE_AFTER}".encode()
    assert written.startswith(head)
    assert written.endswith(tail)
    results = written[len(head) : -len(tail)].decode()
    assert "stale" not in results
    assert "old notes" not in results
    assert results.startswith("\n| scenario |")
    assert results.endswith("\n\n")
    assert [line for line in results.splitlines() if line.startswith("|")] == markdown_rows, "--markdown's tables"
    assert "| spawn | 10 | throughput [k tasks/s] |" in results
    assert "Tables of the run `python -m benchmarks --size tiny --repeat 1 --only spawn --json " in results
    assert main(["--from-json", str(bench_json), "--write-into", str(page)]) == 0
    assert page.read_bytes() == written, "writing the same tables again changes nothing"


def test_write_into_after_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"Before\n{RESULTS_BEGIN}\n{RESULTS_END}\nAfter\n")
    assert main(["--size", "tiny", "--repeat", "1", "--only", "spawn", "--write-into", str(page)]) == 0
    assert "spawn" in capsys.readouterr().out, "the tables are printed too"
    text = page.read_text()
    assert text.startswith(f"Before\n{RESULTS_BEGIN}\n\n| scenario |")
    assert text.endswith(f"\n\n{RESULTS_END}\nAfter\n")
    assert "| spawn | 10 |" in between_markers(text)


@pytest.mark.parametrize(
    ("content", "missing"),
    [
        ("# A page without the markers\n", [RESULTS_BEGIN, RESULTS_END]),
        (f"# Only the end marker\n{RESULTS_END}\n", [RESULTS_BEGIN]),
        (f"# Only the begin marker\n{RESULTS_BEGIN}\n", [RESULTS_END]),
    ],
    ids=["none", "no-begin", "no-end"],
)
def test_a_page_without_a_marker_is_an_error_naming_page_and_marker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, missing: list[str]
) -> None:
    page = tmp_path / "page.md"
    page.write_text(content)
    with pytest.raises(SystemExit) as exit_:  # checked before anything runs
        main(["--size", "tiny", "--repeat", "1", "--only", "spawn", "--write-into", str(page)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "benchmarks: spawn" not in err, "nothing ran"
    message = err.strip().splitlines()[-1]
    assert str(page) in message
    assert [marker for marker in (RESULTS_BEGIN, RESULTS_END) if marker in message] == missing
    assert page.read_text() == content


def test_write_into_a_page_that_does_not_exist_is_an_error_naming_it(
    tmp_path: Path, bench_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "no-such-page.md"
    with pytest.raises(SystemExit) as exit_:
        main(["--from-json", str(bench_json), "--write-into", str(page)])
    assert exit_.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"cannot read {page}: No such file or directory" in message
    assert not page.exists()


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--from-json", "{missing}"], "--from-json: cannot read {missing}: No such file or directory"),
        (["--from-json", "{corrupt}"], "--from-json: {corrupt} is not a JSON file written by --json: JSONDecodeError"),
        (["--from-json", "{empty}"], "--from-json: {empty} is not a JSON file written by --json: KeyError('series')"),
        (["--size", "tiny", "--memory-repeats", "0"], "--memory-repeats must be at least 1"),
        (["--size", "tiny", "--json", "{missing}/x.json"], "--json: cannot write {missing}/x.json: its directory"),
    ],
)
def test_bad_files_and_counts_are_errors_naming_them_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], says: str
) -> None:
    paths = {"missing": str(tmp_path / "missing"), "corrupt": str(tmp_path / "corrupt.json"),
             "empty": str(tmp_path / "empty.json")}  # fmt: skip
    (tmp_path / "corrupt.json").write_text("{bad")
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(SystemExit) as exit_:
        main([option.format(**paths) for option in options])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "repeat 1/" not in err, "nothing ran"
    assert says.format(**paths) in err.strip().splitlines()[-1]


def test_markers_twice_or_in_the_wrong_order_are_errors() -> None:
    with pytest.raises(MarkerError, match=r"page\.md has the marker line <!-- benchmark results: begin .* 2 times"):
        replace_results(f"{RESULTS_BEGIN}\n{RESULTS_BEGIN}\n{RESULTS_END}\n", "x", "page.md")
    with pytest.raises(MarkerError, match=r"page\.md has the marker line <!-- benchmark results: end --> \(line 1\) "
                                          r"before"):
        replace_results(f"{RESULTS_END}\n{RESULTS_BEGIN}\n", "x", "page.md")


PERFORMANCE_PAGE = Path(__file__).resolve().parent.parent / "docs" / "performance.md"


def test_the_performance_page_has_both_markers_with_tables_between() -> None:
    text = PERFORMANCE_PAGE.read_text()
    lines = text.splitlines()
    assert lines.count(RESULTS_BEGIN) == 1
    assert lines.count(RESULTS_END) == 1
    assert lines.index(RESULTS_BEGIN) < lines.index(RESULTS_END)
    assert "\n| scenario | size | metric | trio_tasks | floor | asyncio |" in between_markers(text)


def test_write_into_a_copy_of_the_performance_page_keeps_all_but_the_tables(tmp_path: Path, bench_json: Path) -> None:
    page = tmp_path / "performance.md"
    original = PERFORMANCE_PAGE.read_bytes()
    page.write_bytes(original)
    assert main(["--from-json", str(bench_json), "--write-into", str(page)]) == 0
    written = page.read_bytes()
    head, tail = (original.split(marker.encode(), 1) for marker in (RESULTS_BEGIN, RESULTS_END))
    assert written.startswith(head[0] + RESULTS_BEGIN.encode() + b"\n\n| scenario |")
    assert written.endswith(b"\n\n" + RESULTS_END.encode() + tail[1])
    assert "| spawn | 10 | throughput [k tasks/s] |" in between_markers(written.decode())
