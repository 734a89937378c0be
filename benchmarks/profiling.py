"""``python -m benchmarks --profile``: cProfile of the timed spans only, one implementation at a time.

Set-up (starting the parked tasks of notify/stop_all, opening the manager) is
not profiled; the work of every task that runs during the span is, since it
runs on the same thread. cProfile slows Python calls several times over, so
read the shares, not the absolute times.
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
from collections.abc import Iterable

from .common import SpanProfiler
from .harness import IMPLEMENTATIONS

__all__ = ["profile"]


def profile(chosen: Iterable[str], size: int, impls: Iterable[str], top: int = 25, sort: str = "tottime") -> str:
    """Profile each chosen scenario's timed span at ``size`` for each of ``impls``; return the reports."""
    out = []
    for scenario in chosen:
        for impl in impls:
            runner = IMPLEMENTATIONS[scenario].get(impl)
            if runner is None:
                continue
            runner(size)  # warm up: imports, caches
            gc.collect()
            prof = SpanProfiler.profile = cProfile.Profile()
            try:
                sample = runner(size)
            finally:
                SpanProfiler.profile = None
            buffer = io.StringIO()
            stats = pstats.Stats(prof, stream=buffer)
            stats.sort_stats(sort).print_stats(top)
            out.append(f"=== {scenario} size={size} {impl}: {sample.seconds * 1e3:.1f} ms under cProfile ===\n"
                       + buffer.getvalue())
    return "\n".join(out)
