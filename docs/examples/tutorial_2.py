"""Tutorial, step 2: follow a task's progress as it happens."""

import trio

from trio_tasks import AsyncTaskHandle, Plugin, TaskCtl, open_task_manager, task

plugin = Plugin(name="Deployer", module_name="deployer")

STEPS = ["Building", "Testing", "Packaging"]


@plugin.mount_async_task("deploy")
async def deploy(handle: AsyncTaskHandle, app: str):
    for number, step in enumerate(STEPS):
        yield TaskCtl.report_progress(f"{step} {app}...", 100 * number / len(STEPS))
        await trio.sleep(1)
    yield TaskCtl.success("Deployed", data={"url": f"https://{app}.example.org"})


def show(ctl: TaskCtl) -> None:
    if ctl.is_terminal:
        print(f"{ctl.signal.value}: {ctl.message}" + ("" if ctl.data is None else f" {ctl.data}"))
    else:
        print(f"{ctl.progress:3.0f}% {ctl.message}")


async def main():
    async with open_task_manager() as manager:
        async with manager.watch("deploy", "D1") as events:
            await task.start("deploy", "D1", "chat-1", plugin, app="todo")
            async for event in events:  # ends after the task's terminal event
                show(event.ctl)
        for info in manager.list_tasks():
            print(f"{info.task_type}:{info.task_id} {info.status} after {info.elapsed:.0f}s")


if __name__ == "__main__":
    trio.run(main)
