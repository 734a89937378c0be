"""Scripted task bodies shared by the watch and listing tests.

``script`` runs its steps in order: a TaskCtl is yielded, a number is slept (virtual seconds), a str is a wait
point awaited until it is notified. The same body is mounted under several task types: ``"script"`` and
``"other"`` (no limits), ``"single"`` (one at a time, the rest queue) and ``"flaky"`` (a retry policy).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from trio_tasks import AsyncTaskHandle, Plugin, RetryPolicy, TaskCtl

Step = TaskCtl | float | str

plugin = Plugin(name="Scripts", module_name="scripts")


@plugin.mount_async_task("script")
async def script(handle: AsyncTaskHandle, *steps: Step) -> AsyncIterator[TaskCtl]:
    for step in steps:
        if isinstance(step, TaskCtl):
            yield step
        elif isinstance(step, str):
            await handle.wait(step)
        else:
            await trio.sleep(step)


plugin.mount_async_task("other")(script)
plugin.mount_async_task("single", max_concurrent=1)(script)


@plugin.mount_async_task("flaky", retry=RetryPolicy(attempts=3, backoff=1.0, retry_on=(ConnectionError,)))
async def flaky(handle: AsyncTaskHandle, failures: int, attempts: list[float]) -> AsyncIterator[TaskCtl]:
    """Each attempt reports progress; the first ``failures`` attempts then raise ConnectionError."""
    attempts.append(trio.current_time())
    yield TaskCtl.report_progress(f"attempt {len(attempts)}", 10)
    if len(attempts) <= failures:
        raise ConnectionError(f"boom {len(attempts)}")
    yield TaskCtl.success(f"done on attempt {len(attempts)}")


def progress(message: str, percent: float = 10) -> TaskCtl:
    return TaskCtl.report_progress(message, percent)


def numbered(count: int) -> list[TaskCtl]:
    """``count`` progress reports, "step 0" to "step {count - 1}"."""
    return [TaskCtl.report_progress(f"step {n}", n * 100 / count) for n in range(count)]


async def shielded_cleanup(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
    """Works until cancelled, then takes a second of shielded cleanup (a stop that comes meanwhile finds it ending)."""
    yield TaskCtl.report_progress("working", 10)
    try:
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            await trio.sleep(1)
