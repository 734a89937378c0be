import trio

from trio_tasks import Plugin, TaskCtl, open_task_manager, task

plugin = Plugin(name="Demo", module_name="demo")

@plugin.mount_async_task("approval")
async def approval(handle, prompt: str):
    yield TaskCtl.report_progress(f"Waiting for approval: {prompt}", 50)
    approved = await handle.wait("approval", timeout=3600)  # None on timeout
    yield TaskCtl.success("Approved") if approved else TaskCtl.fail("Not approved")

async def main():
    # No task outlives this block; watch() streams one task's progress and outcome.
    async with open_task_manager() as manager, manager.watch("approval", "A1") as events:
        await task.start("approval", "A1", "chat-1", plugin, prompt="Deploy?")
        task.get_handle("approval", "A1").notify("approval", True)  # the user says yes
        async for event in events:
            print(event.ctl.signal.value, event.ctl.message)

trio.run(main)
