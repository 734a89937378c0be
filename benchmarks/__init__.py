"""The benchmark suite of trio_tasks: ``python -m benchmarks --help``.

Each scenario runs for trio_tasks and for two baselines doing the same work in
the same process: the bare-Trio floor (:mod:`benchmarks.floor`) and the
asyncio reference (:mod:`benchmarks.asyncio_ref`). Benchmarks are not tests:
``tests/test_benchmarks_smoke.py`` runs every scenario once at a tiny size and
asserts nothing about time.
"""
