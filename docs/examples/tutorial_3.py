"""Tutorial, step 3: a task that waits for the user's approval."""

import trio

from trio_tasks import AsyncTaskHandle, Plugin, TaskCtl, open_task_manager, task

plugin = Plugin(name="Deployer", module_name="deployer")


@plugin.mount_async_task("deploy")
async def deploy(handle: AsyncTaskHandle, app: str, approval_timeout: float = 3600):
    yield TaskCtl.report_progress(f"Building {app}...", 10)
    await trio.sleep(1)
    yield TaskCtl.report_progress(f"Waiting for approval to deploy {app}", 50)
    approved = await handle.wait("approval", timeout=approval_timeout)
    if not approved:  # False if the user said no, None if the timeout passed first
        yield TaskCtl.fail(f"Not deployed (approval: {approved})")
        return
    yield TaskCtl.report_progress(f"Deploying {app}...", 80)
    await trio.sleep(1)
    yield TaskCtl.success("Deployed", data={"url": f"https://{app}.example.org"})


def show(ctl: TaskCtl) -> None:
    if ctl.is_terminal:
        print(f"{ctl.signal.value}: {ctl.message}" + ("" if ctl.data is None else f" {ctl.data}"))
    else:
        print(f"{ctl.progress:3.0f}% {ctl.message}")


async def user_approves(task_id: str, after: float) -> None:
    """The user, who answers in the chat a while later."""
    await trio.sleep(after)
    print(f"(the user approves {task_id})")
    task.get_handle("deploy", task_id).notify("approval", True)


async def main():
    async with open_task_manager() as manager, trio.open_nursery() as nursery:
        async with manager.watch("deploy", "D1") as events:
            await task.start("deploy", "D1", "chat-1", plugin, app="todo")
            nursery.start_soon(user_approves, "D1", 3)
            async for event in events:
                show(event.ctl)

        # Nobody answers this one: its wait returns None after 2 seconds.
        async with manager.watch("deploy", "D2") as events:
            await task.start("deploy", "D2", "chat-1", plugin, app="blog", approval_timeout=2)
            async for event in events:
                show(event.ctl)


if __name__ == "__main__":
    trio.run(main)
