"""``python -m benchmarks [--size small|large] [--repeat N] [--only SCENARIO] [--json PATH] [--write-into PAGE]``."""

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

from .common import SCENARIOS, SIZES, Sample, default_repeats
from .harness import Series, run_suite, stderr_log
from .profiling import profile
from .report import (
    Clock,
    MarkerError,
    Row,
    ScalingRow,
    render,
    replace_results,
    rows,
    scaling_rows,
    to_json,
    write_into,
    write_json,
)

ONLY_CHOICES = (*SCENARIOS, "scaling")


def make_parser() -> argparse.ArgumentParser:
    """The command line's parser."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark trio_tasks against a bare-Trio floor and an asyncio reference.",
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="small",
                        help="small: 1k and 10k tasks (default); large: also 100k; tiny: smoke test only")
    parser.add_argument("--repeat", type=int,
                        help="runs of each implementation per size (default: 7 at 1k and 10k tasks, 3 at 100k)")
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
    parser.add_argument("--profile", metavar="IMPL", action="append", choices=("trio_tasks", "floor", "asyncio"),
                        help="instead of benchmarking, cProfile the timed spans of IMPL (repeatable) at the "
                             "largest size and print the top functions")
    parser.add_argument("--write-into", metavar="PAGE",
                        help="write the tables as Markdown into PAGE (docs/performance.md) between its two marker "
                             "lines, leaving the rest of the page as it is: after a run as well as printing them, "
                             "with --from-json instead of printing them")
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, checked: for ``--write-into``, the page must already have its marker lines, so that a
    long run does not end in an error."""
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.memory_repeats < 1:
        parser.error(f"--memory-repeats must be at least 1 (idle memory is measured in that many repeats), "
                     f"got {args.memory_repeats}")
    if args.json and not Path(args.json).resolve().parent.is_dir():
        parser.error(f"--json: cannot write {args.json}: its directory does not exist")
    if args.write_into:
        if args.profile:
            parser.error("--write-into writes benchmark tables; --profile prints no tables")
        problem = _write_into_problem(args.write_into)
        if problem:
            parser.error(problem)
    return args


def _write_into_problem(path: str) -> str | None:
    """Why the tables cannot be written into the page at ``path``, or None if they can."""
    try:
        with open(path, encoding="utf-8", newline="") as file:
            replace_results(file.read(), "", path)
    except OSError as error:
        return f"--write-into: cannot read {path}: {error.strerror or error}"
    except MarkerError as error:
        return f"--write-into: {error}"
    return None


def write_results(path: str, table_rows: Sequence[Row], scaling: Sequence[ScalingRow], source: str) -> None:
    """Write the tables as Markdown, the notes and ``source`` (which run they come from) between the marker lines
    of the page at ``path``; a page that cannot be written exits with the parser's error (status 2)."""
    results = f"{render(table_rows, scaling, markdown=True)}\n\n{source}"
    try:
        write_into(path, results)
    except OSError as error:
        make_parser().error(f"--write-into: cannot write {path}: {error.strerror or error}")
    except MarkerError as error:
        make_parser().error(f"--write-into: {error}")
    stderr_log(f"benchmarks: wrote the tables into {path}")


def _source(command: str | None, wall_seconds: float | None, library: str | None) -> str:
    """The run the tables come from, as the last line of what ``--write-into`` writes."""
    details = [f"{wall_seconds:.0f} s" if wall_seconds is not None else "", f"trio_tasks {library}" if library else ""]
    run = f"the run `{command}`" if command else "a run"
    return f"Tables of {run}: {', '.join(d for d in details if d) or 'no details recorded'}."


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
        try:
            series, data = load_series(args.from_json)
        except OSError as error:
            make_parser().error(f"--from-json: cannot read {args.from_json}: {error.strerror or error}")
        except (ValueError, KeyError, TypeError) as error:  # (json's JSONDecodeError is a ValueError)
            make_parser().error(f"--from-json: {args.from_json} is not a JSON file written by --json: {error!r}")
        if args.write_into:
            source = _source(data.get("command"), data.get("wall_seconds"), data.get("library"))
            write_results(args.write_into, rows(series), scaling_rows(series), source)
            return 0
        print(render(rows(series), scaling_rows(series), args.markdown))
        print(f"\nFrom {args.from_json}: {data['command']}, {data['wall_seconds']:.1f} s, library {data['library']}")
        return 0
    only = args.only or list(SCENARIOS)
    chosen = [s for s in SCENARIOS if s in only or ("scaling" in only and s in ("spawn", "stop_all"))]
    sizes = SIZES[args.size]
    if args.profile:
        print(profile(chosen, sizes[-1], args.profile))
        return 0
    began = time.perf_counter()
    repeats = [default_repeats(size) if args.repeat is None else args.repeat for size in sizes]
    stderr_log(f"benchmarks: {', '.join(chosen)} at sizes {sizes}, {repeats} repeat(s)")
    series = run_suite(chosen, sizes, args.repeat, stderr_log, args.memory_repeats)
    wall = time.perf_counter() - began
    table_rows, scaling = rows(series), scaling_rows(series)
    print(render(table_rows, scaling, args.markdown))
    print(f"\nTotal wall time: {wall:.1f} s")
    command = " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])])
    library = library_version()
    if args.json:
        meta = {"command": command,
                "size": args.size, "sizes": list(sizes), "repeat": args.repeat, "repeats": repeats,
                "memory_repeats": args.memory_repeats,
                "scenarios": chosen,
                "wall_seconds": wall, "library": library}
        write_json(args.json, to_json(series, table_rows, scaling, meta))
    if args.write_into:
        write_results(args.write_into, table_rows, scaling, _source(command, wall, library))
    return 0


if __name__ == "__main__":
    sys.exit(main())
