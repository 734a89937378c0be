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
from benchmarks.common import PER_UPDATE, PROGRESS, PROGRESS_TASKS, SUCCESS, BenchmarkError, Terminals, check_watched
from benchmarks.harness import IMPLEMENTATIONS
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
