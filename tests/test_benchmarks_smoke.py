"""The benchmark suite runs: every scenario of every implementation, once, at a tiny size.

Benchmarks are not tests: nothing here looks at a time. It checks that each
run did the work it claims (one terminal callback per task, with the expected
signal, which the scenarios also check themselves), so that the suite cannot
rot while the library changes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.__main__ import main
from benchmarks.common import PROGRESS_TASKS, BenchmarkError, Terminals
from benchmarks.harness import IMPLEMENTATIONS
from trio_tasks import TaskCtl, TaskSignal

TASKS = 10
UPDATES = 10

RUNS = [(scenario, impl) for scenario, impls in IMPLEMENTATIONS.items() for impl in impls]


@pytest.mark.parametrize(("scenario", "impl"), RUNS, ids=[f"{s}-{i}" for s, i in RUNS])
def test_every_scenario_runs_with_one_callback_per_task(scenario: str, impl: str) -> None:
    size = UPDATES if scenario == "progress" else TASKS
    sample = IMPLEMENTATIONS[scenario][impl](size)
    tasks = PROGRESS_TASKS if scenario == "progress" else TASKS
    assert sample.tasks == tasks
    assert sample.callbacks == tasks
    assert sample.units == (PROGRESS_TASKS * UPDATES if scenario == "progress" else TASKS)
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
