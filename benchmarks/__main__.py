"""``python -m benchmarks [--size small|large] [--repeat N] [--only SCENARIO] [--json PATH]``."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio_tasks

from .common import SCENARIOS, SIZES, Sample
from .harness import Series, run_suite, stderr_log
from .profiling import profile
from .report import Clock, render, rows, scaling_rows, to_json, write_json

ONLY_CHOICES = (*SCENARIOS, "scaling")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark trio_tasks against a bare-Trio floor and an asyncio reference.",
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="small",
                        help="small: 1k and 10k tasks (default); large: also 100k; tiny: smoke test only")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each implementation per size (default 5)")
    parser.add_argument("--only", choices=ONLY_CHOICES, action="append",
                        help="run only this scenario (repeatable); 'scaling' means spawn and stop_all")
    parser.add_argument("--memory-repeats", type=int, default=1, metavar="N",
                        help="measure idle memory (a slow traced run) in the first N repeats only (default 1: "
                             "tracemalloc's count does not vary between repeats)")
    parser.add_argument("--json", metavar="PATH", help="also write every repeat, the medians and the checks here")
    parser.add_argument("--from-json", metavar="PATH",
                        help="do not run anything: print the tables of a JSON file written by --json")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="tables from perf_counter wall time (default) or process CPU time (steadier when "
                             "other processes compete for the cores; both are always in the JSON)")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--rst", action="store_true",
                        help="print the tables as reStructuredText (for docs/benchmark_results.inc)")
    parser.add_argument("--profile", metavar="IMPL", action="append", choices=("trio_tasks", "floor", "asyncio"),
                        help="instead of benchmarking, cProfile the timed spans of IMPL (repeatable) at the "
                             "largest size and print the top functions")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def library_version() -> str:
    """trio_tasks' version and, in a git checkout, the commit and whether the tree has local changes."""
    described = trio_tasks.__version__
    try:
        root = Path(trio_tasks.__file__).parent
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=root, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return described
    return f"{described} (git {commit}{', with local changes' if dirty else ''})"


def load_series(path: str) -> tuple[list[Series], dict[str, Any]]:
    """The series and the metadata of a JSON file written by ``--json``."""
    data = json.loads(Path(path).read_text())
    series = [
        Series(s["scenario"], s["size"], s["impl"], [Sample(**repeat) for repeat in s["repeats"]])
        for s in data["series"]
    ]
    return series, data


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite, print the table, write the JSON; the exit status is 0 whether or not targets pass."""
    args = parse_args(argv)
    Clock.cpu = args.clock == "cpu"
    if args.from_json:
        series, data = load_series(args.from_json)
        print(render(rows(series), scaling_rows(series), args.markdown, args.rst))
        print(f"\nFrom {args.from_json}: {data['command']}, {data['wall_seconds']:.1f} s, library {data['library']}")
        return 0
    only = args.only or list(SCENARIOS)
    chosen = [s for s in SCENARIOS if s in only or ("scaling" in only and s in ("spawn", "stop_all"))]
    sizes = SIZES[args.size]
    if args.profile:
        print(profile(chosen, sizes[-1], args.profile))
        return 0
    began = time.perf_counter()
    stderr_log(f"benchmarks: {', '.join(chosen)} at sizes {sizes}, {args.repeat} repeat(s)")
    series = run_suite(chosen, sizes, args.repeat, stderr_log, args.memory_repeats)
    wall = time.perf_counter() - began
    table_rows, scaling = rows(series), scaling_rows(series)
    print(render(table_rows, scaling, args.markdown, args.rst))
    print(f"\nTotal wall time: {wall:.1f} s")
    if args.json:
        meta = {"command": " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]),
                "size": args.size, "sizes": list(sizes), "repeat": args.repeat, "memory_repeats": args.memory_repeats,
                "scenarios": chosen,
                "wall_seconds": wall, "library": library_version()}
        write_json(args.json, to_json(series, table_rows, scaling, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
