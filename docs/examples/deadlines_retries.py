"""How-to: deadlines and retries."""

import trio

from trio_tasks import AsyncTaskHandle, Plugin, RetryPolicy, TaskCtl, TaskTimeout, open_task_manager

plugin = Plugin(name="Fetcher", module_name="fetcher")


class FlakyService:
    """Stands for an HTTP API that answers 503 a few times before it works."""

    def __init__(self, failures: int, seconds: float = 1):
        self.failures = failures
        self.seconds = seconds

    async def get(self, path: str) -> str:
        await trio.sleep(self.seconds)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("503 Service Unavailable")
        return f"<contents of {path}>"


# Up to 3 attempts; after a ConnectionError wait 1 s, then 2 s (doubling, at most 60 s).
@plugin.mount_async_task("fetch", retry=RetryPolicy(attempts=3, backoff=1, retry_on=(ConnectionError,)))
async def fetch(handle: AsyncTaskHandle, service: FlakyService, path: str):
    yield TaskCtl.report_progress(f"Fetching {path}", 10)
    try:
        body = await service.get(path)
    finally:
        print(f"  ({handle.task_id}: connection closed)")  # runs on every way out, timeouts included
    yield TaskCtl.success("Fetched", data=body)


def show(ctl: TaskCtl) -> None:
    what = f"{ctl.progress:.0f}%" if not ctl.is_terminal else ctl.signal.value
    print(f"  attempt {ctl.attempt} {what}: {ctl.message}")


async def run(manager, task_id: str, service: FlakyService, task_timeout: float | None = None) -> TaskCtl:
    print(f"{task_id}:")
    async with manager.watch("fetch", task_id) as events:
        await manager.start("fetch", task_id, "chat-1", plugin, service, "/report", task_timeout=task_timeout)
        async for event in events:
            show(event.ctl)
    return event.ctl


async def main():
    async with open_task_manager() as manager:
        await run(manager, "F1", FlakyService(failures=1))  # fails once, then works
        failed = await run(manager, "F2", FlakyService(failures=5))  # fails on every attempt
        print("  data:", repr(failed.data))
        # task_timeout bounds the whole task, every attempt and backoff included.
        timed_out = await run(manager, "F3", FlakyService(failures=0, seconds=30), task_timeout=10)
        print("  data is a TaskTimeout:", isinstance(timed_out.data, TaskTimeout))


if __name__ == "__main__":
    trio.run(main)
