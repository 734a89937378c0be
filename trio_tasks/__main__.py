"""Command line: ``python -m trio_tasks demo``."""

from __future__ import annotations

import argparse
import math
import sys

_DEMO_HELP = """\
A simulated agent chat, run for real on trio_tasks: the agent keeps answering while
background tasks run beside it (a web-app build, a video render the user cancels, an
approval, a task that hits its deadline, a flaky API call that is retried, thumbnails
queued behind a concurrency limit). On a terminal with rich installed it draws a live
view; otherwise (or with --plain) it prints one timestamped line per event. It ends by
itself after about 13 seconds at --speed 1. It exits 0 when every task reached the
outcome its script meant (a machine too busy for a high --speed may miss one), 1 otherwise.
"""


MIN_SPEED, MAX_SPEED = 0.01, 1000
MAX_TASKS = 10_000  # more, and the run is all setup and the view unreadable


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    # Faster, and the scripted outcomes no longer fit the clock's resolution; slower, and it takes a day.
    if not (MIN_SPEED <= value <= MAX_SPEED):
        raise argparse.ArgumentTypeError(
            f"must be a number from {MIN_SPEED} to {MAX_SPEED} (20 runs twenty times faster), got {text!r}"
        )
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_TASKS:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {MAX_TASKS:,}, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        digits = text.strip().lstrip("+-").replace("_", "")
        limit = sys.get_int_max_str_digits()
        if digits.isdigit() and limit and len(digits) > limit:  # a whole number, past Python's int() limit
            raise argparse.ArgumentTypeError(
                f"must be a whole number of at most {limit} digits, got {len(digits)} digits"
            ) from None
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def parser() -> argparse.ArgumentParser:
    """The command line parser of ``python -m trio_tasks``."""
    parser = argparse.ArgumentParser(prog="python -m trio_tasks", description="trio_tasks command line")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="run a simulated agent chat with background tasks",
        description=_DEMO_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--tasks", type=_count, default=0, metavar="N", help="run N more tasks (default 0)")
    demo.add_argument(
        "--speed", type=_speed, default=1.0, metavar="FACTOR", help="compress time: 20 runs twenty times faster"
    )
    demo.add_argument("--seed", type=_seed, default=None, help="seed for the --tasks durations and outcomes")
    demo.add_argument("--plain", action="store_true", help="print plain timestamped lines even on a terminal")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; return the exit code."""
    args = parser().parse_args(argv)
    from ._demo import main as demo_main

    return demo_main(speed=args.speed, tasks=args.tasks, seed=args.seed, plain=args.plain)


if __name__ == "__main__":
    sys.exit(main())
