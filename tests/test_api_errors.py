"""Bad input: every error trio_tasks raises on purpose, and that its message names the bad value.

Also: the public names exist and are documented.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio
import trio.testing
from recording import wait_until_idle

import trio_tasks
from trio_tasks import (
    AsyncTaskHandle,
    ManagerClosed,
    NoTaskManager,
    Plugin,
    RetryPolicy,
    TaskAlreadyRunning,
    TaskCtl,
    TaskManager,
    TaskSignal,
    UnknownTaskType,
    open_task_manager,
    task,
)
from trio_tasks._checks import check_number
from trio_tasks.testing import run_task

plugin = Plugin(name="Errors", module_name="errors")


@plugin.mount_async_task("park")
async def park(handle: AsyncTaskHandle) -> None:
    await trio.sleep_forever()


@plugin.mount_async_task("greet")
async def greet(handle: AsyncTaskHandle, name: str) -> AsyncIterator[TaskCtl]:
    yield TaskCtl.success(f"Hello, {name}")


async def parked_handle(manager: TaskManager) -> AsyncTaskHandle:
    return await manager.start("park", "P", "chat", plugin)


def names(value: object) -> str:
    """A regex matching ``repr(value)``: the message must name the bad value."""
    return re.escape(repr(value))


# -- TaskCtl and TaskSignal ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (TaskCtl.success, 123),
        (TaskCtl.fail, b"bytes"),
        (TaskCtl.cancel, None),
        (lambda message: TaskCtl.report_progress(message, 10), 4.5),
    ],
)
def test_taskctl_message_must_be_a_str(make: Any, message: object) -> None:
    with pytest.raises(TypeError, match=rf"message must be a str, got {names(message)}"):
        make(message)


@pytest.mark.parametrize(
    ("percent", "error"),
    [
        (True, TypeError),
        ("50", TypeError),
        (None, TypeError),
        (math.nan, ValueError),
        (-1, ValueError),
        (101, ValueError),
    ],
)
def test_progress_percent_must_be_a_number_from_0_to_100(percent: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=rf"percent .*got {names(percent)}"):
        TaskCtl.report_progress("Working...", percent)  # type: ignore[arg-type]


@pytest.mark.parametrize("percent", [10**400, -(10**400)])
def test_progress_percent_too_large_for_a_float_is_out_of_range(percent: int) -> None:
    with pytest.raises(ValueError, match=rf"percent must be from 0 to 100, got {percent} \(out of range\)"):
        TaskCtl.report_progress("Working...", percent)


def test_a_value_too_long_to_show_is_named_by_its_size() -> None:
    with pytest.raises(ValueError, match=r"percent must be from 0 to 100, got an int of about 5,001 digits"):
        TaskCtl.report_progress("Working...", 10**5000)


@pytest.mark.parametrize(("attempt", "error"), [("2", TypeError), (True, TypeError), (1.0, TypeError), (0, ValueError)])
def test_attempt_must_be_none_or_an_int_from_1(attempt: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=rf"attempt must be None or an int >= 1, got {names(attempt)}"):
        TaskCtl(TaskSignal.SUCCESS, "Done", attempt=attempt)  # type: ignore[arg-type]


@pytest.mark.parametrize("percent", [0, 0.5, 100])
def test_progress_percent_bounds_are_accepted(percent: float) -> None:
    assert TaskCtl.report_progress("Working...", percent).progress == percent


@pytest.mark.parametrize("signal", [TaskSignal.SUCCESS, TaskSignal.FAIL, TaskSignal.CANCEL])
def test_progress_is_only_set_on_progress_reports(signal: TaskSignal) -> None:
    with pytest.raises(ValueError, match=rf"progress=50 with signal '{signal.value}'"):
        TaskCtl(signal, "Done", None, 50)


def test_taskctl_signal_must_be_a_task_signal() -> None:
    with pytest.raises(TypeError, match="signal must be a TaskSignal, got 'success'"):
        TaskCtl("success", "Done")  # type: ignore[arg-type]


def test_task_signal_values() -> None:
    assert [signal.value for signal in TaskSignal] == ["progress", "success", "fail", "cancel"]
    assert TaskSignal("cancel") is TaskSignal.CANCEL
    with pytest.raises(ValueError, match="'finished'"):
        TaskSignal("finished")


def test_taskctl_is_frozen() -> None:
    ctl = TaskCtl.success("Done")
    with pytest.raises(AttributeError):
        ctl.message = "changed"  # type: ignore[misc]


# -- Plugin ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["name", "module_name"])
@pytest.mark.parametrize("value", ["", 42, None])
def test_plugin_names_must_be_non_empty_str(field: str, value: object) -> None:
    kwargs: dict[str, Any] = {"name": "Good", "module_name": "good", field: value}
    with pytest.raises(TypeError, match=rf"{field} must be a non-empty str, got {names(value)}"):
        Plugin(**kwargs)


def sync_body(handle: AsyncTaskHandle) -> None:
    pass


def sync_generator_body(handle: AsyncTaskHandle) -> Iterator[TaskCtl]:
    yield TaskCtl.success()


class ClassBody:
    def __init__(self, handle: AsyncTaskHandle) -> None:
        pass


@pytest.mark.parametrize(
    ("func", "shown"),
    [
        (sync_body, "sync_body"),
        (sync_generator_body, "sync_generator_body"),
        (lambda handle: None, "lambda"),
        (ClassBody, "ClassBody"),
    ],
)
def test_mount_async_task_needs_an_async_function(func: Any, shown: str) -> None:
    fresh = Plugin(name="Fresh", module_name="fresh")
    with pytest.raises(TypeError, match=rf"mount_async_task\('job'\) needs an async generator function.*{shown}"):
        fresh.mount_async_task("job")(func)
    assert fresh.task_types == [], "a refused function is not mounted"


def test_mount_async_task_refuses_a_type_already_mounted() -> None:
    fresh = Plugin(name="Fresh", module_name="fresh")

    @fresh.mount_async_task("job")
    async def first(handle: AsyncTaskHandle) -> None:
        pass

    async def second(handle: AsyncTaskHandle) -> None:
        pass

    with pytest.raises(ValueError, match=r"task type 'job' is already mounted on plugin 'Fresh'"):
        fresh.mount_async_task("job")(second)
    assert fresh._spec("job").func is first, "the first mount stands"


def test_mount_async_task_refuses_a_colon_in_the_task_type() -> None:
    with pytest.raises(ValueError, match=r"task_type 'video:render' must not contain ':'"):
        plugin.mount_async_task("video:render")


@pytest.mark.parametrize("task_type", ["", 7, None])
def test_mount_async_task_needs_a_non_empty_str_task_type(task_type: object) -> None:
    with pytest.raises(TypeError, match=rf"task_type must be a non-empty str, got {names(task_type)}"):
        plugin.mount_async_task(task_type)  # type: ignore[arg-type]


async def no_parameters() -> None:
    pass


async def keyword_only_handle(*, handle: AsyncTaskHandle) -> None:
    pass


@pytest.mark.parametrize("func", [no_parameters, keyword_only_handle])
def test_mount_async_task_needs_a_handle_parameter(func: Any) -> None:
    fresh = Plugin(name="Fresh", module_name="fresh")
    with pytest.raises(TypeError, match=rf"{func.__name__} must take the AsyncTaskHandle as its first positional"):
        fresh.mount_async_task("job")(func)
    assert fresh.task_types == []


def test_mount_async_task_names_a_partial_that_leaves_no_handle_parameter() -> None:
    fresh = Plugin(name="Fresh", module_name="fresh")
    bound = functools.partial(greet, "not a handle", "Ann")
    with pytest.raises(TypeError, match=r"task function functools\.partial\(<function greet .* must take the "):
        fresh.mount_async_task("job")(bound)


def test_mount_async_task_returns_the_function_unchanged() -> None:
    fresh = Plugin(name="Fresh", module_name="fresh")

    async def body(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
        yield TaskCtl.success()

    assert fresh.mount_async_task("job")(body) is body
    assert fresh.task_types == ["job"]


def test_on_disabled_needs_an_async_function() -> None:
    def cleanup() -> None:
        pass

    with pytest.raises(TypeError, match=r"on_disabled\(\) needs an `async def` function.*cleanup"):
        plugin.on_disabled()(cleanup)


def test_on_disabled_refuses_a_hook_that_needs_arguments() -> None:
    async def cleanup(reason: str) -> None:
        pass

    with pytest.raises(TypeError, match=r"taking no arguments.*cleanup"):
        plugin.on_disabled()(cleanup)


async def test_on_disabled_works_without_parentheses() -> None:
    fresh = Plugin(name="Fresh", module_name="fresh")
    ran: list[str] = []

    @fresh.on_disabled
    async def cleanup(reason: str = "disabled") -> None:
        ran.append(reason)

    await fresh.disable()
    assert ran == ["disabled"]


async def test_disable_runs_every_hook_in_order_and_raises_the_failures_together(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fresh = Plugin(name="Fresh", module_name="fresh")
    ran: list[str] = []

    def hook(name: str, error: Exception | None = None) -> None:
        async def run() -> None:
            ran.append(name)
            if error is not None:
                raise error

        assert fresh.on_disabled()(run) is run

    hook("first")
    hook("second", ValueError("second broke"))
    hook("third")
    hook("fourth", KeyError("fourth broke"))

    with pytest.RaisesGroup(
        pytest.RaisesExc(ValueError, match="second broke"),
        pytest.RaisesExc(KeyError, match="fourth broke"),
        match=r"2 on_disabled hook\(s\) of plugin 'Fresh' failed",
    ):
        await fresh.disable()
    assert ran == ["first", "second", "third", "fourth"]
    assert [r.levelno for r in caplog.records if r.name == "trio_tasks"] == [logging.ERROR, logging.ERROR]


# -- start ------------------------------------------------------------------------------------------------------


async def test_start_an_unknown_task_type() -> None:
    async with open_task_manager() as manager:
        with pytest.raises(UnknownTaskType, match=r"no task type 'nope' \(mounted: 'park', 'greet'\)") as info:
            await manager.start("nope", "T", "chat", plugin)
        assert manager.get_running_tasks() == []
    assert isinstance(info.value, ValueError)


async def test_start_a_task_that_is_already_running() -> None:
    async with open_task_manager() as manager:
        await parked_handle(manager)
        with pytest.raises(TaskAlreadyRunning, match=r"task park:P is already running") as info:
            await parked_handle(manager)
        assert manager.get_running_tasks() == ["park:P"]
    assert isinstance(info.value, ValueError)


async def test_start_needs_a_callable_on_terminal() -> None:
    async with open_task_manager() as manager:
        with pytest.raises(TypeError, match=r"on_terminal must be a callable.*got 'print'"):
            await manager.start("park", "P", "chat", plugin, on_terminal="print")
        assert manager.get_running_tasks() == []


@pytest.mark.parametrize("argument", ["task_type", "task_id", "chat_key"])
@pytest.mark.parametrize("value", [1, None, b"T"])
async def test_start_needs_str_ids(argument: str, value: object) -> None:
    arguments: dict[str, Any] = {"task_type": "park", "task_id": "P", "chat_key": "chat", argument: value}
    async with open_task_manager() as manager:
        with pytest.raises(TypeError, match=rf"{argument} must be a str, got {names(value)}"):
            await manager.start(plugin=plugin, **arguments)
        assert manager.get_running_tasks() == []


async def test_start_needs_a_plugin() -> None:
    async with open_task_manager() as manager:
        with pytest.raises(TypeError, match=r"plugin must be a trio_tasks.Plugin, got 'errors'"):
            await manager.start("park", "P", "chat", "errors")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), (("Ann", "Bob"), {}), ((), {"name": "Ann", "mood": "happy"})],
)
async def test_start_with_arguments_the_body_does_not_take(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    async with open_task_manager() as manager:
        with pytest.raises(TypeError, match=r"cannot start greet:G: .*greet\(\)"):
            await manager.start("greet", "G", "chat", plugin, *args, **kwargs)
        assert manager.get_running_tasks() == []


async def test_start_after_the_block_raises_manager_closed() -> None:
    async with open_task_manager() as manager:
        pass
    with pytest.raises(ManagerClosed, match=r"cannot start park:P: the task manager has closed") as info:
        await parked_handle(manager)
    assert isinstance(info.value, RuntimeError)


async def test_a_finished_task_can_be_started_again() -> None:
    endings: list[TaskCtl] = []
    async with open_task_manager() as manager:
        for name in ("Ann", "Bob"):
            await manager.start("greet", "G", "chat", plugin, name, on_terminal=endings.append)
            await trio.testing.wait_all_tasks_blocked()
        assert manager.get_state("greet", "G") == TaskCtl.success("Hello, Bob")
    assert endings == [TaskCtl.success("Hello, Ann"), TaskCtl.success("Hello, Bob")]


class BrokenText(Exception):
    """An exception, or a yielded value, whose text cannot be made."""

    def __str__(self) -> str:
        raise RuntimeError("str is broken")

    def __repr__(self) -> str:
        raise RuntimeError("repr is broken")


broken = Plugin(name="Broken", module_name="broken")


@broken.mount_async_task("raises_broken")
async def raises_broken(handle: AsyncTaskHandle) -> None:
    raise BrokenText


@broken.mount_async_task("yields_broken")
async def yields_broken(handle: AsyncTaskHandle) -> AsyncIterator[Any]:
    yield BrokenText()


@broken.mount_async_task("retries_broken", retry=RetryPolicy(attempts=2))
async def retries_broken(handle: AsyncTaskHandle) -> None:
    raise BrokenText


@pytest.mark.parametrize(
    ("task_type", "message"),
    [
        ("raises_broken", "BrokenText (its str() failed)"),
        ("retries_broken", "BrokenText (its str() failed)"),
        (
            "yields_broken",
            "task yields_broken:X yielded <a BrokenText whose repr() failed> (BrokenText), which is not a TaskCtl; ",
        ),
    ],
)
async def test_a_body_whose_error_or_yield_has_no_text_ends_fail_and_harms_no_other_task(
    autojump_clock: trio.testing.MockClock, task_type: str, message: str
) -> None:
    ends: list[TaskCtl] = []
    async with open_task_manager() as manager:
        bystander = await manager.start("park", "P", "chat", plugin, on_terminal=ends.append)
        await manager.start(task_type, "X", "chat", broken, on_terminal=ends.append)
        await trio.sleep(5)
        assert manager.is_running("park", "P")
        await manager.cancel(bystander.task_type, bystander.task_id)
    failed, cancelled = ends
    assert failed.signal is TaskSignal.FAIL
    assert failed.message.startswith(message)
    assert cancelled == TaskCtl.cancel("Cancelled by cancel()")


async def test_start_passes_a_self_keyword_to_the_body() -> None:
    own = Plugin(name="Own", module_name="own")

    @own.mount_async_task("keywords")
    async def keywords(handle: AsyncTaskHandle, **kwargs: Any) -> Any:
        return kwargs

    async with open_task_manager() as manager:
        ends: list[TaskCtl] = []
        await manager.start("keywords", "K", "chat", own, self="me", on_terminal=ends.append)
        portal = manager.portal()
        await trio.to_thread.run_sync(lambda: portal.start("keywords", "P", "chat", own, self="you"))
        await wait_until_idle(manager)
    assert [ctl.data for ctl in ends] == [{"self": "me"}]
    assert manager.get_state("keywords", "P") == TaskCtl.success(data={"self": "you"})


# -- the task facade ------------------------------------------------------------------------------------------------

NO_MANAGER = re.escape("async with trio_tasks.open_task_manager():")


def test_task_outside_any_manager_raises_no_task_manager() -> None:
    with pytest.raises(NoTaskManager, match=NO_MANAGER) as info:
        task.get_running_tasks()
    assert isinstance(info.value, RuntimeError)


async def test_task_after_the_block_raises_no_task_manager() -> None:
    async with open_task_manager():
        assert task.get_running_tasks() == []
    with pytest.raises(NoTaskManager, match=NO_MANAGER):
        await task.start("park", "P", "chat", plugin)


OTHER_RUN = r"runs in another Trio run: this code runs in another thread .* manager\.portal\(\)"


async def test_task_in_a_thread_started_from_the_block_raises_no_task_manager_naming_the_portal() -> None:
    """The thread has a copy of the block's context, but Trio objects are used only from their own thread."""

    def in_thread() -> list[str]:
        with pytest.raises(NoTaskManager, match=OTHER_RUN):
            task.get_running_tasks()
        return trio.from_thread.run_sync(lambda: task.get_running_tasks())  # in the Trio thread: the manager again

    async with open_task_manager():
        await task.start("park", "P", "chat", plugin)
        assert await trio.to_thread.run_sync(in_thread) == ["park:P"]
        await task.stop_all()


async def test_a_trio_run_of_its_own_in_such_a_thread_sees_no_manager() -> None:
    def own_run() -> list[TaskCtl]:
        async def main() -> list[TaskCtl]:
            with pytest.raises(NoTaskManager, match=OTHER_RUN):
                task.get_running_tasks()
            return await run_task(plugin, "greet", name="Ann")  # in a manager of its own

        return trio.run(main)

    async with open_task_manager() as manager:
        assert await trio.to_thread.run_sync(own_run) == [TaskCtl.success("Hello, Ann")]
        assert manager.list_tasks() == [], "nothing ran in the other run's manager"


@pytest.mark.parametrize("attribute", ["no_such_attr", "_live"])
async def test_task_has_only_the_managers_public_attributes(attribute: str) -> None:
    async with open_task_manager():
        with pytest.raises(AttributeError, match=rf"trio_tasks.task has no attribute '{attribute}'"):
            getattr(task, attribute)


# -- wait points and notices -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeout", "error"),
    [(-1, ValueError), (-0.5, ValueError), (math.nan, ValueError), (True, TypeError), ("10", TypeError)],
)
async def test_wait_refuses_a_bad_timeout(timeout: object, error: type[Exception]) -> None:
    async with open_task_manager() as manager:
        handle = await parked_handle(manager)
        with pytest.raises(error, match=rf"timeout must be .*got {names(timeout)}"):
            await handle.wait("k", timeout=timeout)  # type: ignore[arg-type]


async def call(handle: AsyncTaskHandle, method: str, *args: Any) -> Any:
    """Call ``handle.<method>(*args)``, awaiting the result if it is async."""
    result = getattr(handle, method)(*args)
    return await result if inspect.isawaitable(result) else result


@pytest.mark.parametrize("method", ["wait", "notify", "cancel_wait"])
@pytest.mark.parametrize("key", [42, None, ("a", "b")])
async def test_wait_point_keys_must_be_str(method: str, key: object) -> None:
    async with open_task_manager() as manager:
        handle = await parked_handle(manager)
        with pytest.raises(TypeError, match=rf"key must be a str, got {names(key)}"):
            await call(handle, method, key)


async def test_notify_agent_needs_a_str_message() -> None:
    async with open_task_manager() as manager:
        handle = await parked_handle(manager)
        with pytest.raises(TypeError, match=r"message must be a str, got \{'text': 'hi'\}"):
            await handle.notify_agent({"text": "hi"})  # type: ignore[arg-type]


@pytest.mark.parametrize("trigger", [1, "yes", None])
async def test_notify_agent_needs_a_bool_trigger(trigger: object) -> None:
    async with open_task_manager() as manager:
        handle = await parked_handle(manager)
        with pytest.raises(TypeError, match=rf"trigger must be a bool, got {names(trigger)}"):
            await handle.notify_agent("hi", trigger=trigger)  # type: ignore[arg-type]


# -- open_task_manager ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "shown"),
    [
        ({"grace_period": -1}, ValueError, "grace_period .*got -1"),
        ({"grace_period": math.inf}, ValueError, "grace_period .*got inf"),
        ({"grace_period": math.nan}, ValueError, "grace_period .*got nan"),
        ({"grace_period": True}, TypeError, "grace_period .*got True"),
        ({"grace_period": "5"}, TypeError, "grace_period .*got '5'"),
        ({"history_limit": -1}, ValueError, "history_limit .*got -1"),
        ({"history_limit": 1.5}, TypeError, r"history_limit .*got 1\.5"),
        ({"history_limit": False}, TypeError, "history_limit .*got False"),
        ({"on_agent_notice": 42}, TypeError, "on_agent_notice must be a callable.*got 42"),
    ],
)
async def test_open_task_manager_refuses_bad_options(
    options: dict[str, Any], error: type[Exception], shown: str
) -> None:
    with pytest.raises(error, match=shown):
        async with open_task_manager(**options):
            pytest.fail("the block must not run")


@broken.mount_async_task("interrupts")
async def interrupts(handle: AsyncTaskHandle) -> None:
    raise KeyboardInterrupt


async def test_a_start_while_an_interrupt_leaves_the_manager_says_it_is_closing() -> None:
    refused: list[str] = []

    async def run() -> None:
        async with open_task_manager() as manager:
            with trio.CancelScope(shield=True):  # (the block goes on a moment: the interrupt cancels it)
                await manager.start("interrupts", "K", "chat", broken)
                with pytest.raises(ManagerClosed) as info:
                    await manager.start("park", "P", "chat", plugin)
                refused.append(str(info.value))
                assert not manager.closed

    with pytest.raises(KeyboardInterrupt):
        await run()
    assert refused == [
        "cannot start park:P: the task manager is closing, as an exception from one of its tasks (a "
        "KeyboardInterrupt) leaves it"
    ]


# -- the public API ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", trio_tasks.__all__)
def test_every_public_name_exists_and_is_documented(name: str) -> None:
    obj = getattr(trio_tasks, name)
    assert inspect.getdoc(obj), f"trio_tasks.{name} has no docstring"


def public_members() -> list[tuple[str, object]]:
    members = []
    for class_name in trio_tasks.__all__:
        cls = getattr(trio_tasks, class_name)
        if not inspect.isclass(cls):
            continue
        for member_name, member in vars(cls).items():
            if not member_name.startswith("_") and (
                inspect.isfunction(member) or isinstance(member, (property, classmethod, staticmethod))
            ):
                members.append((f"{class_name}.{member_name}", member))
    return members


@pytest.mark.parametrize(("name", "member"), public_members(), ids=[name for name, _ in public_members()])
def test_every_public_method_is_documented(name: str, member: object) -> None:
    assert inspect.getdoc(member), f"{name} has no docstring"


# -- durations too large for a float ----------------------------------------------------------------------------------

HUGE = 10**400  # an int: a number >= 0 and < inf, yet no float holds it, and Trio's deadlines are floats


async def _huge_wait(manager: TaskManager) -> None:
    await (await parked_handle(manager)).wait("k", timeout=HUGE)


async def _huge_task_timeout(manager: TaskManager) -> None:
    await manager.start("park", "P", "chat", plugin, task_timeout=HUGE)


async def _huge_cancel_grace(manager: TaskManager) -> None:
    await parked_handle(manager)
    await manager.cancel("park", "P", grace=HUGE)


async def _huge_stop_all_grace(manager: TaskManager) -> None:
    await parked_handle(manager)
    await manager.stop_all(grace=HUGE)


@pytest.mark.parametrize(
    ("call", "shown"),
    [
        (_huge_wait, "timeout is too large: got an int of 401 digits, more than a float holds; use math.inf"),
        (_huge_task_timeout, "task_timeout is too large: got an int of 401 digits.*; use math.inf for no limit"),
        (_huge_cancel_grace, "grace is too large: got an int of 401 digits, more than a float holds$"),
        (_huge_stop_all_grace, "grace is too large: got an int of 401 digits, more than a float holds$"),
    ],
)
async def test_a_duration_too_large_for_a_float_is_refused_when_given(
    call: Callable[[TaskManager], Awaitable[None]], shown: str
) -> None:
    async with open_task_manager() as manager:
        with pytest.raises(ValueError, match=shown):
            await call(manager)
        assert manager.get_running_tasks() in ([], ["park:P"]), "the manager runs on"


async def test_a_grace_period_too_large_for_a_float_is_refused_when_the_manager_opens() -> None:
    with pytest.raises(ValueError, match="grace_period is too large: got an int of 401 digits"):
        async with open_task_manager(grace_period=HUGE):
            pytest.fail("the block must not run")


@pytest.mark.parametrize("field", ["backoff", "max_backoff"])
def test_a_retry_delay_too_large_for_a_float_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match=f"RetryPolicy {field} is too large: got an int of 401 digits"):
        RetryPolicy(**{field: HUGE})


def test_an_int_too_large_for_str_is_named_by_its_size() -> None:
    with pytest.raises(ValueError, match="task_timeout is too large: got an int of about 5,001 digits"):
        check_number("task_timeout", 10**5000, low_ok=False, inf_ok=True)


@pytest.mark.parametrize(
    ("on_limit", "error"),
    [("drop", ValueError), ("", ValueError), (5, TypeError), (None, TypeError), (True, TypeError)],
)
async def test_on_limit_must_be_queue_or_reject(on_limit: object, error: type[Exception]) -> None:
    shown = rf"on_limit must be 'queue' \(the task waits for a free slot\) or 'reject' .*got {names(on_limit)}"
    with pytest.raises(error, match=shown):
        Plugin(name="Limits", module_name="limits").mount_async_task("job", on_limit=on_limit)  # type: ignore[arg-type]
    with pytest.raises(error, match=shown):
        async with open_task_manager(max_concurrent=1, on_limit=on_limit):  # type: ignore[arg-type]
            pytest.fail("the block must not run")


async def test_a_negative_int_too_long_to_show_is_named_by_its_size_and_sign() -> None:
    with pytest.raises(ValueError, match=r"history_limit must be >= 0 .*got a negative int of about 5,001 digits"):
        async with open_task_manager(history_limit=-(10**5000)):
            pytest.fail("the block must not run")


class _UnshowableError(Exception):
    pass


class _Unshowable:
    """A bad argument whose own ``repr()`` fails."""

    def __repr__(self) -> str:
        raise _UnshowableError("repr failed")


_UNSHOWABLE_ARGUMENTS: list[tuple[str, Callable[[TaskManager, object], Any]]] = [
    ("task_id", lambda manager, bad: manager.start("park", bad, "chat", plugin)),
    ("chat_key", lambda manager, bad: manager.start("park", "P", bad, plugin)),
    ("plugin", lambda manager, bad: manager.start("park", "P", "chat", bad)),
    ("on_terminal", lambda manager, bad: manager.start("park", "P", "chat", plugin, on_terminal=bad)),
    ("task_type", lambda manager, bad: manager.is_running(bad, "P")),
    ("buffer", lambda manager, bad: manager.watch("park", "P", buffer=bad)),
    ("message", lambda manager, bad: TaskCtl.success(bad)),
    ("percent", lambda manager, bad: TaskCtl.report_progress("half", bad)),
    ("name", lambda manager, bad: Plugin(name=bad, module_name="m")),
    ("on_limit", lambda manager, bad: plugin.mount_async_task("other", on_limit=bad)),
    ("retry_on", lambda manager, bad: RetryPolicy(retry_on=bad)),
    ("attempts", lambda manager, bad: RetryPolicy(attempts=bad)),
]


_INT_IS_VALID = {"buffer", "percent", "attempts"}  # a huge int for these is a ValueError, tested above
_UNSHOWABLE_CASES = [
    pytest.param(argument, call, bad, id=f"{kind}-{argument}")
    for kind, bad in [("repr_fails", _Unshowable()), ("int_too_long_for_str", 10**5000)]
    for argument, call in _UNSHOWABLE_ARGUMENTS
    if not (isinstance(bad, int) and argument in _INT_IS_VALID)
]


async def _called(call: Callable[[TaskManager, object], Any], manager: TaskManager, bad: object) -> None:
    result = call(manager, bad)
    if inspect.isawaitable(result):
        await result


@pytest.mark.parametrize(("argument", "call", "bad"), _UNSHOWABLE_CASES)
async def test_a_bad_argument_that_cannot_be_shown_still_gets_the_error_naming_the_argument(
    argument: str, call: Callable[[TaskManager, object], Any], bad: object
) -> None:
    """A value whose repr() raises (or an int past Python's digit limit) is named by its type or size."""
    shown = "<a _Unshowable whose repr() failed>" if isinstance(bad, _Unshowable) else "an int of about 5,001 digits"
    async with open_task_manager() as manager:
        with pytest.raises(TypeError, match=rf"{argument} .*got {re.escape(shown)}"):
            await _called(call, manager, bad)
        assert manager.get_running_tasks() == []


async def test_a_task_manager_is_made_by_open_task_manager_only() -> None:
    async with trio.open_nursery() as nursery:
        with pytest.raises(TypeError, match=r"TaskManager is not made directly: use `async with .*open_task_manager"):
            TaskManager(nursery)
    async with open_task_manager() as manager:
        assert isinstance(manager, TaskManager)
        with pytest.raises(TypeError, match=r"TaskPortal is not made directly: get one with `manager.portal\(\)`"):
            trio_tasks.TaskPortal(manager, trio.lowlevel.current_trio_token())
        assert isinstance(manager.portal(), trio_tasks.TaskPortal)


async def test_an_open_task_manager_block_is_entered_once() -> None:
    """Entering it again, after its end or inside it, says to call open_task_manager() again."""
    again = r"open_task_manager\(\) block was entered already; call open_task_manager\(\) again"
    block = open_task_manager()
    async with block as manager:
        await manager.start("park", "P", "chat", plugin)
        with pytest.raises(RuntimeError, match=again):
            async with block:
                pytest.fail("the block must not run")
        assert manager.is_running("park", "P"), "the first block goes on"
    with pytest.raises(RuntimeError, match=again):
        async with block:
            pytest.fail("the block must not run")
