"""How-to: concurrency limits and queueing."""

import trio

from trio_tasks import AsyncTaskHandle, Plugin, TaskCtl, TooManyTasks, open_task_manager, task

plugin = Plugin(name="Studio", module_name="studio")


@plugin.mount_async_task("render", max_concurrent=2)  # two renders at once; further starts queue
async def render(handle: AsyncTaskHandle, scene: str, seconds: float):
    yield TaskCtl.report_progress(f"Rendering {scene}...", 10)
    await trio.sleep(seconds)
    yield TaskCtl.success(f"Rendered {scene}")


@plugin.mount_async_task("upload", max_concurrent=1, on_limit="reject")  # one at a time; others are refused
async def upload(handle: AsyncTaskHandle, file: str):
    yield TaskCtl.report_progress(f"Uploading {file}...", 50)
    await trio.sleep(5)
    yield TaskCtl.success(f"Uploaded {file}")


def show(manager, task_type):
    for info in manager.list_tasks(task_type=task_type):
        print(f"  {info.task_id} {info.status:<7} {info.state.message}")


async def main():
    async with open_task_manager(max_concurrent=10) as manager:  # and at most 10 tasks of any type
        scenes = [("intro", 6), ("city", 8), ("chase", 5), ("ending", 5)]
        for number, (scene, seconds) in enumerate(scenes, start=1):
            await task.start("render", f"R{number}", "chat-1", plugin, scene=scene, seconds=seconds)
        print("Four renders started:")
        show(manager, "render")

        await task.cancel("render", "R4")  # a queued task is cancelled at once; its body never runs
        await trio.sleep(9)  # R1 ends after 6 s and R3 takes its slot; R2 ends after 8 s
        print("Nine seconds later:")
        show(manager, "render")

        await task.start("upload", "U1", "chat-1", plugin, file="intro.mp4")
        try:
            await task.start("upload", "U2", "chat-1", plugin, file="city.mp4")
        except TooManyTasks as error:
            print("Refused:", error)


if __name__ == "__main__":
    trio.run(main)
