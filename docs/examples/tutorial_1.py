"""Tutorial, step 1: a plugin with one background task."""

import trio

from trio_tasks import AsyncTaskHandle, Plugin, TaskCtl, open_task_manager, task

plugin = Plugin(name="Deployer", module_name="deployer")


@plugin.mount_async_task("deploy")
async def deploy(handle: AsyncTaskHandle, app: str):
    yield TaskCtl.report_progress(f"Building {app}...", 10)
    await trio.sleep(1)  # stands for the real work
    yield TaskCtl.report_progress(f"Testing {app}...", 60)
    await trio.sleep(1)
    yield TaskCtl.success("Deployed", data={"url": f"https://{app}.example.org"})


def report(ctl: TaskCtl) -> None:
    print(f"{ctl.signal.value}: {ctl.message}" + ("" if ctl.data is None else f" {ctl.data}"))


async def main():
    async with open_task_manager():
        await task.start("deploy", "D1", "chat-1", plugin, app="todo", on_terminal=report)
        print(task.get_running_tasks())
        print(task.get_state("deploy", "D1").message)
        await trio.sleep(5)  # the agent keeps chatting meanwhile
        print(task.get_running_tasks())
    print("The task manager has closed.")


if __name__ == "__main__":
    trio.run(main)
