"""Command line: ``python -m trio_tasks demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m trio_tasks", description="trio_tasks command line")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a simulated agent chat with background tasks")
    demo.add_argument("--speed", type=float, default=1.0, help="time compression factor (2 = twice as fast)")
    args = parser.parse_args(argv)
    if args.speed <= 0:
        parser.error(f"--speed must be > 0, got {args.speed}")
    from ._demo import main as demo_main

    return demo_main(args.speed)


if __name__ == "__main__":
    sys.exit(main())
