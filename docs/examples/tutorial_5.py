"""Tutorial, step 5: the complete plugin, talking to the agent."""

import trio

from trio_tasks import AgentNotice, AsyncTaskHandle, Plugin, TaskCtl, TaskSignal, open_task_manager, task

plugin = Plugin(name="Deployer", module_name="deployer", description="Builds and deploys web apps")


@plugin.mount_async_task("deploy")
async def deploy(handle: AsyncTaskHandle, app: str):
    yield TaskCtl.report_progress(f"Building {app}...", 10)
    await trio.sleep(1)
    await handle.notify_agent(f"A preview of {app} is up at https://preview.example.org/{app}", trigger=False)
    yield TaskCtl.report_progress(f"Waiting for approval to deploy {app}", 50)
    await handle.notify_agent(f"Deploying {app} needs the user's approval")  # trigger=True: the agent acts now
    approved = await handle.wait("approval", timeout=3600)
    if not approved:
        yield TaskCtl.fail(f"Not deployed (approval: {approved})")
        return
    yield TaskCtl.report_progress(f"Deploying {app}...", 80)
    await trio.sleep(1)
    yield TaskCtl.success("Deployed", data={"url": f"https://{app}.example.org"})


# -- The agent's side: its tools, and how it hears from tasks ------------------------------------


async def on_agent_notice(notice: AgentNotice) -> None:
    """Where the agent framework receives a task's messages (here: printed)."""
    action = "starts a turn" if notice.trigger else "notes"
    print(f"[agent {action}] {notice.task_id}: {notice.message}")


async def post_to_chat(chat_key: str, text: str) -> None:
    """Stands for the framework's message service."""
    await trio.sleep(0.1)  # a network round trip
    print(f"[{chat_key}] {text}")


async def create_deploy_task(chat_key: str, app: str) -> str:
    """Tool: start deploying ``app`` in the background and return at once."""
    task_id = f"deploy-{app}"

    async def on_terminal(ctl: TaskCtl) -> None:  # an async callback runs in the manager's nursery
        if ctl.signal == TaskSignal.SUCCESS:
            await post_to_chat(chat_key, f"{app} is live at {ctl.data['url']}")
        else:
            await post_to_chat(chat_key, f"{app} was not deployed: {ctl.message}")

    await task.start("deploy", task_id, chat_key, plugin, app=app, on_terminal=on_terminal)
    return f"Task started: {task_id}"


def approve_deploy(task_id: str, approved: bool) -> str:
    """Tool: pass the user's answer to the task waiting for it."""
    handle = task.get_handle("deploy", task_id)
    if handle is None:
        return f"{task_id} is not running"
    handle.notify("approval", approved)
    return f"Answer passed to {task_id}"


async def cancel_deploy(task_id: str) -> str:
    """Tool: cancel a deployment."""
    if await task.cancel("deploy", task_id):
        return f"{task_id} cancelled"
    return f"{task_id} is not running"


async def main():
    async with open_task_manager(on_agent_notice=on_agent_notice, grace_period=5):
        print(await create_deploy_task("chat-1", "todo"))
        await trio.sleep(0.5)
        print(await create_deploy_task("chat-1", "blog"))
        await trio.sleep(2)  # the agent keeps chatting; both tasks now wait for approval
        print(task.get_running_tasks())
        print(approve_deploy("deploy-todo", True))
        await trio.sleep(0.5)
        print(await cancel_deploy("deploy-blog"))
        await trio.sleep(2)


if __name__ == "__main__":
    trio.run(main)
