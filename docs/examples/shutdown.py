"""How-to: graceful shutdown."""

import signal

import trio

from trio_tasks import AsyncTaskHandle, Plugin, TaskCtl, open_task_manager, task

studio = Plugin(name="Studio", module_name="studio")
uploads = Plugin(name="Uploads", module_name="uploads")


@studio.mount_async_task("render")
async def render(handle: AsyncTaskHandle, scene: str, frames: int):
    """Stops at a clean point when asked: after the frame it is rendering."""
    for frame in range(1, frames + 1):
        yield TaskCtl.report_progress(f"Rendering {scene}: frame {frame} of {frames}", 100 * frame / frames)
        await trio.sleep(1)  # one frame
        if handle.is_cancelled:
            yield TaskCtl.cancel(f"Stopped after frame {frame} of {frames}; partial file saved")
            return
    yield TaskCtl.success(f"Rendered {scene}")


@studio.mount_async_task("approval")
async def approval(handle: AsyncTaskHandle, what: str):
    """Does not look at cancel requests: it is cancelled when the grace period ends."""
    yield TaskCtl.report_progress(f"Waiting for approval: {what}", 50)
    approved = await handle.wait("approval")
    yield TaskCtl.success("Approved") if approved else TaskCtl.fail("Rejected")


@uploads.mount_async_task("upload")
async def upload(handle: AsyncTaskHandle, file: str):
    for chunk in range(1, 101):
        yield TaskCtl.report_progress(f"Uploading {file}: chunk {chunk}", chunk)
        await trio.sleep(0.4)
        if handle.is_cancelled:
            yield TaskCtl.cancel(f"Upload of {file} paused after chunk {chunk}")
            return


@uploads.on_disabled()
async def stop_uploads():
    stopped = await task.stop_all(plugin=uploads, grace=2)  # only this plugin's tasks
    print(f"Uploads plugin disabled; {stopped} task(s) stopped")


async def wait_for_shutdown_signal():
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            print(f"Got {signal.Signals(signum).name}: shutting down")
            return


def report(task_id: str):
    return lambda ctl: print(f"  {task_id} {ctl.signal.value}: {ctl.message}")


async def main():
    async with open_task_manager(grace_period=5):  # on the way out, tasks get 5 s to stop on their own
        await task.start("render", "R1", "chat-1", studio, scene="intro", frames=100, on_terminal=report("R1"))
        await task.start("approval", "A1", "chat-1", studio, what="publish intro", on_terminal=report("A1"))
        await task.start("upload", "U1", "chat-1", uploads, file="teaser.mp4", on_terminal=report("U1"))
        await trio.sleep(1.5)
        await uploads.disable()
        print("Running:", task.get_running_tasks(), "- press Ctrl-C to stop")
        await wait_for_shutdown_signal()
        started = trio.current_time()
    print(f"Every task has ended, {trio.current_time() - started:.0f} s after the signal.")


if __name__ == "__main__":
    trio.run(main)
