"""How-to: test the tutorial's plugin with trio_tasks.testing.

Run with ``python -m pytest docs/examples/test_deployer.py`` (pytest-trio in trio_mode, as in this
project's pyproject.toml; otherwise mark each test ``@pytest.mark.trio``).
"""

import trio
from tutorial_5 import approve_deploy, cancel_deploy, create_deploy_task, plugin

from trio_tasks import TaskCtl, TaskSignal, task
from trio_tasks.testing import run_task


async def test_deploy_fails_after_an_hour_without_approval(autojump_clock):
    # run_task runs one task to its end and returns every TaskCtl it reported.
    # On autojump_clock, the hour-long wait for approval passes at once.
    started = trio.current_time()
    ctls = await run_task(plugin, "deploy", app="todo")
    assert [ctl.message for ctl in ctls] == [
        "Building todo...",
        "Waiting for approval to deploy todo",
        "Not deployed (approval: None)",
    ]
    assert ctls[-1].signal is TaskSignal.FAIL
    assert trio.current_time() - started == 1 + 3600


async def test_run_task_with_an_answer(task_manager, autojump_clock):
    # To answer a wait under run_task, notify the task from beside the test, by its id.
    async def approve_soon():
        await trio.sleep(10)  # by then the task waits for approval
        task.get_handle("deploy", "D1").notify("approval", True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(approve_soon)
        ctls = await run_task(plugin, "deploy", app="todo", task_id="D1")
    assert ctls[-1] == TaskCtl.success("Deployed", data={"url": "https://todo.example.org"})


async def test_an_approved_deploy_goes_live(task_manager, autojump_clock, capsys):
    # The task_manager fixture is open for the whole test; trio_tasks.task refers to it.
    assert await create_deploy_task("chat-1", "todo") == "Task started: deploy-todo"
    await trio.sleep(10)
    assert task.get_state("deploy", "deploy-todo").message == "Waiting for approval to deploy todo"

    assert approve_deploy("deploy-todo", True) == "Answer passed to deploy-todo"
    await trio.sleep(10)
    assert task.get_state("deploy", "deploy-todo") == TaskCtl.success(
        "Deployed", data={"url": "https://todo.example.org"}
    )
    assert capsys.readouterr().out == "[chat-1] todo is live at https://todo.example.org\n"


async def test_the_task_tells_the_agent(task_manager, autojump_clock):
    # Without on_agent_notice, the notices queue up in manager.agent_notices().
    notices = task_manager.agent_notices()
    await create_deploy_task("chat-1", "blog")
    await trio.sleep(10)
    first, second = notices.receive_nowait(), notices.receive_nowait()
    assert (first.task_id, first.trigger) == ("deploy-blog", False)
    assert first.message == "A preview of blog is up at https://preview.example.org/blog"
    assert (second.message, second.trigger) == ("Deploying blog needs the user's approval", True)


async def test_a_cancelled_deploy_is_reported_once(task_manager, autojump_clock, capsys):
    await create_deploy_task("chat-1", "blog")
    assert await cancel_deploy("deploy-blog") == "deploy-blog cancelled"
    assert await cancel_deploy("deploy-blog") == "deploy-blog is not running"
    await trio.sleep(1)  # the async on_terminal callback posts its message
    assert task.get_state("deploy", "deploy-blog") == TaskCtl.cancel("Cancelled by cancel()")
    assert capsys.readouterr().out == "[chat-1] blog was not deployed: Cancelled by cancel()\n"
