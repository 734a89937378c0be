"""How-to: drive tasks from another thread."""

import time

import trio

from trio_tasks import AsyncTaskHandle, Plugin, TaskCtl, TaskPortal, open_task_manager

plugin = Plugin(name="Approvals", module_name="approvals")


@plugin.mount_async_task("approval")
async def approval(handle: AsyncTaskHandle, what: str):
    yield TaskCtl.report_progress(f"Waiting for approval: {what}", 50)
    approved = await handle.wait("approval", timeout=3600)
    yield TaskCtl.success(f"Approved: {what}") if approved else TaskCtl.fail(f"Rejected: {what}")


def approval_desk(portal: TaskPortal) -> None:
    """Blocking code in a worker thread: a GUI, a webhook server, a command line.

    Each portal call blocks this thread until Trio has done it, and returns its result.
    """
    portal.start("approval", "A1", "chat-1", plugin, what="deploy the todo app")
    portal.start("approval", "A2", "chat-1", plugin, what="drop the database")
    print("Running:", portal.get_running_tasks())
    print("A1 says:", portal.get_state("approval", "A1").message)
    time.sleep(0.5)  # blocking calls are fine in this thread
    print("Notified A1:", portal.notify("approval", "A1", "approval", True))
    print("Cancelled A2:", portal.cancel("approval", "A2"))
    print("A2 ended with:", portal.get_state("approval", "A2").message)
    print("A1 ended with:", portal.get_state("approval", "A1").message)


async def main():
    async with open_task_manager() as manager:
        portal = manager.portal()  # made in the Trio thread, used in the other one
        await trio.to_thread.run_sync(approval_desk, portal)


if __name__ == "__main__":
    trio.run(main)
