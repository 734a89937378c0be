"""Tutorial, step 4: cancelling a task, at once or at a clean point."""

import trio

from trio_tasks import AsyncTaskHandle, Plugin, TaskCtl, open_task_manager, task

plugin = Plugin(name="Deployer", module_name="deployer")

STEPS = ["Building", "Testing", "Packaging"]


@plugin.mount_async_task("deploy")
async def deploy(handle: AsyncTaskHandle, app: str):
    try:
        for number, step in enumerate(STEPS):
            yield TaskCtl.report_progress(f"{step} {app}...", 100 * number / len(STEPS))
            await trio.sleep(1)
            if handle.is_cancelled:  # asked to stop: stop between two steps
                yield TaskCtl.cancel(f"Stopped after {step.lower()} {app}")
                return
        yield TaskCtl.success("Deployed", data={"url": f"https://{app}.example.org"})
    finally:
        print(f"({handle.task_id}: build directory removed)")


def report(ctl: TaskCtl) -> None:
    print(f"{ctl.signal.value}: {ctl.message}")


async def main():
    async with open_task_manager():
        # Cancel at once: the task's cancel scope is cancelled where it waits.
        await task.start("deploy", "D1", "chat-1", plugin, app="todo", on_terminal=report)
        await trio.sleep(0.5)
        print("cancelled:", await task.cancel("deploy", "D1"))
        print("still running:", task.is_running("deploy", "D1"))

        # Cancel with a grace period: the task is asked first and stops at a clean point.
        await task.start("deploy", "D2", "chat-1", plugin, app="blog", on_terminal=report)
        await trio.sleep(1.5)
        print("cancelled:", await task.cancel("deploy", "D2", grace=10))
        print("cancelled again:", await task.cancel("deploy", "D2"))


if __name__ == "__main__":
    trio.run(main)
