"""Retries: ``mount_async_task(..., retry=RetryPolicy(...))``.

Bodies follow a script: ``outcomes[n]`` says how attempt ``n + 1`` ends. Each attempt records its virtual start
time in a :class:`Attempts` log, so the tests can see the backoff on the clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from recording import Ended, only, recorder, wait_until_idle

from trio_tasks import (
    AsyncTaskHandle,
    Plugin,
    RetryPolicy,
    TaskCtl,
    TaskManager,
    TaskSignal,
    WaitCancelled,
    open_task_manager,
)


@attrs.define
class Attempts:
    """The start times of every attempt, the arguments each saw, and the errors raised."""

    began: list[float] = attrs.Factory(list)
    closed: int = 0
    args: list[Any] = attrs.Factory(list)
    errors: list[BaseException] = attrs.Factory(list)


async def scripted(
    handle: AsyncTaskHandle, log: Attempts, outcomes: list[str], work: float = 0.0
) -> AsyncIterator[TaskCtl]:
    """Attempt ``n`` reports progress, works for ``work`` seconds, then does ``outcomes[n - 1]`` (the last repeats)."""
    log.began.append(trio.current_time())
    log.args.append(outcomes)
    n = len(log.began)
    try:
        yield TaskCtl.report_progress(f"attempt body {n}", 10)
        await trio.sleep(work)
        outcome = outcomes[min(n, len(outcomes)) - 1]
        if outcome == "ok":
            yield TaskCtl.success(f"succeeded on attempt {n}")
        elif outcome == "yield_fail":
            yield TaskCtl.fail("gave up on purpose")
        elif outcome == "wait":
            await handle.wait("never")
        else:
            error: Exception = {"connection": ConnectionError, "value": ValueError}[outcome](f"boom {n}")
            log.errors.append(error)
            raise error
    finally:
        log.closed += 1


def mounted(policy: RetryPolicy | None) -> Plugin:
    plugin = Plugin(name="Retries", module_name="retries")
    plugin.mount_async_task("job", retry=policy)(scripted)
    return plugin


async def start(manager: TaskManager, plugin: Plugin, *args: Any) -> list[Ended]:
    ends: list[Ended] = []
    await manager.start("job", "T", "chat", plugin, *args, on_terminal=recorder(ends))
    return ends


# -- running again ------------------------------------------------------------------------------------------


async def test_exhausted_retries_fail_with_the_last_exception(autojump_clock: trio.testing.MockClock) -> None:
    log = Attempts()
    outcomes = ["connection"]
    async with open_task_manager() as manager:
        t0 = trio.current_time()
        ends = await start(manager, mounted(RetryPolicy(attempts=3, backoff=1.0, factor=2.0)), log, outcomes)
        await trio.sleep(2.5)
        assert manager.is_running("job", "T"), "still retrying: no terminal yet"
        assert ends == []
        await wait_until_idle(manager)
    end = only(ends)
    assert end.ctl.signal is TaskSignal.FAIL
    assert end.ctl.data is log.errors[-1]
    assert str(end.ctl.data) == "boom 3"
    assert end.ctl.attempt == 3
    assert log.began == [t0, t0 + 1, t0 + 3], "backoff of 1 then 2 seconds"
    assert log.closed == 3, "every attempt's body was closed"
    assert all(args is outcomes for args in log.args), "every attempt got the same arguments"


async def test_backoff_is_capped_by_max_backoff(autojump_clock: trio.testing.MockClock) -> None:
    log = Attempts()
    policy = RetryPolicy(attempts=5, backoff=1.0, factor=2.0, max_backoff=3.0)
    async with open_task_manager() as manager:
        t0 = trio.current_time()
        ends = await start(manager, mounted(policy), log, ["connection"])
        await wait_until_idle(manager)
    assert log.began == [t0, t0 + 1, t0 + 3, t0 + 6, t0 + 9], "waits of 1, 2, then 3 (not 4, 8)"
    assert only(ends).ctl.attempt == 5


async def test_success_on_the_second_attempt(autojump_clock: trio.testing.MockClock) -> None:
    log = Attempts()
    async with open_task_manager() as manager:
        t0 = trio.current_time()
        ends = await start(manager, mounted(RetryPolicy(attempts=3, backoff=2.0)), log, ["connection", "ok"], 1.0)
        await wait_until_idle(manager)
    end = only(ends)
    assert end.ctl == TaskCtl(TaskSignal.SUCCESS, "succeeded on attempt 2", attempt=2)
    assert end.at == t0 + 4, "1 second of work, 2 of backoff, 1 of work"
    assert log.began == [t0, t0 + 3]


async def test_backoff_is_logged_as_a_warning(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_task_manager() as manager:
        await start(manager, mounted(RetryPolicy(attempts=2)), Attempts(), ["connection", "ok"])
        await wait_until_idle(manager)
    warnings = [r.getMessage() for r in caplog.records if r.name == "trio_tasks" and r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "attempt 1 of 2" in warnings[0]
    assert "boom 1" in warnings[0]


# -- not retried -------------------------------------------------------------------------------------------


async def test_a_yielded_fail_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    log = Attempts()
    async with open_task_manager() as manager:
        ends = await start(manager, mounted(RetryPolicy(attempts=3)), log, ["yield_fail"])
        await wait_until_idle(manager)
    assert only(ends).ctl == TaskCtl(TaskSignal.FAIL, "gave up on purpose", attempt=1)
    assert len(log.began) == 1


async def test_wait_cancelled_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    log = Attempts()
    policy = RetryPolicy(attempts=3, retry_on=(Exception,))  # WaitCancelled is an Exception too
    assert issubclass(WaitCancelled, Exception)
    async with open_task_manager() as manager:
        ends = await start(manager, mounted(policy), log, ["wait"])
        await trio.sleep(1)
        handle = manager.get_handle("job", "T")
        assert handle is not None
        assert handle.cancel_wait("never") is True
        await wait_until_idle(manager)
    end = only(ends)
    assert end.ctl.signal is TaskSignal.CANCEL
    assert "never" in end.ctl.message
    assert len(log.began) == 1


async def test_an_exception_not_in_retry_on_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    log = Attempts()
    async with open_task_manager() as manager:
        ends = await start(manager, mounted(RetryPolicy(attempts=3, retry_on=ConnectionError)), log, ["value"])
        await wait_until_idle(manager)
    end = only(ends)
    assert end.ctl.signal is TaskSignal.FAIL
    assert isinstance(end.ctl.data, ValueError)
    assert end.ctl.attempt == 1
    assert len(log.began) == 1


async def test_a_matching_exception_is_retried_and_a_later_other_one_is_not(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Attempts()
    policy = RetryPolicy(attempts=5, retry_on=(ConnectionError, TimeoutError))
    async with open_task_manager() as manager:
        ends = await start(manager, mounted(policy), log, ["connection", "value"])
        await wait_until_idle(manager)
    end = only(ends)
    assert isinstance(end.ctl.data, ValueError)
    assert end.ctl.attempt == 2
    assert len(log.began) == 2


# -- cancel during the backoff -----------------------------------------------------------------------------


async def test_cancel_during_backoff_ends_cancel_at_once(autojump_clock: trio.testing.MockClock) -> None:
    log = Attempts()
    async with open_task_manager() as manager:
        t0 = trio.current_time()
        ends = await start(manager, mounted(RetryPolicy(attempts=3, backoff=10.0)), log, ["connection"])
        await trio.sleep(4)
        assert await manager.cancel("job", "T") is True
        assert trio.current_time() == t0 + 4
        await trio.sleep(30)
    end = only(ends)
    assert end.ctl.signal is TaskSignal.CANCEL
    assert end.ctl.message == "Cancelled by cancel()"
    assert end.ctl.attempt == 2, "the number of the attempt the backoff was for, as its report says"
    assert end.at == t0 + 4
    assert log.began == [t0], "no further attempt"


async def test_cancel_with_grace_during_backoff_ends_cancel_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """No body is running during the backoff, so there is no step to finish: as with a queued task."""
    log = Attempts()
    async with open_task_manager() as manager:
        t0 = trio.current_time()
        ends = await start(manager, mounted(RetryPolicy(attempts=3, backoff=10.0)), log, ["connection"])
        await trio.sleep(4)
        assert await manager.cancel("job", "T", grace=30) is True
        assert trio.current_time() == t0 + 4
    assert only(ends).ctl.message == "Cancelled by cancel()"
    assert log.began == [t0], "no further attempt"


async def cleanup_fails(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
    """Works until cancelled; its cleanup then raises a ConnectionError (closing a client, say)."""
    yield TaskCtl.report_progress("working", 10)
    try:
        await trio.sleep_forever()
    finally:
        raise ConnectionError("reset during cleanup")


@pytest.mark.parametrize("how", ["task_timeout", "cancel from outside", "stop_all"])
async def test_a_failure_once_a_cancel_has_reached_the_task_is_not_retried(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """However the cancel came, the task ends as it would without a policy: FAIL with its cleanup's error."""
    plugin = Plugin(name="Retries", module_name="retries")
    plugin.mount_async_task("job", retry=RetryPolicy(attempts=3, backoff=1.0))(cleanup_fails)
    ends: list[Ended] = []
    t0 = trio.current_time()
    with trio.move_on_after(2 if how == "cancel from outside" else math.inf):
        async with open_task_manager(grace_period=5) as manager:
            timeout = 2 if how == "task_timeout" else None
            await manager.start("job", "T", "chat", plugin, on_terminal=recorder(ends), task_timeout=timeout)
            if how == "cancel from outside":
                try:
                    await trio.sleep_forever()
                finally:  # the block's own cleanup: the close comes after the task has met the cancel
                    with trio.CancelScope(shield=True):
                        await trio.sleep(1)
            await trio.sleep(2 if how == "stop_all" else 3)
            if how == "stop_all":
                await manager.stop_all()
    end = only(ends)
    assert end.ctl.signal is TaskSignal.FAIL
    assert end.ctl.message == "reset during cleanup"
    assert end.ctl.attempt == 1
    assert end.at == t0 + 2
    assert not [r for r in caplog.records if "retrying" in r.getMessage()], "no retry was announced"


async def test_a_failure_after_the_deadline_passed_in_synchronous_code_is_not_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The body overruns its task_timeout without a checkpoint (a long parse), then raises: Trio has not
    cancelled anything yet, but the deadline has come, and the task ends as it would without a policy."""
    plugin = Plugin(name="Retries", module_name="retries")

    @plugin.mount_async_task("job", retry=RetryPolicy(attempts=3, backoff=1.0))
    async def overruns(handle: AsyncTaskHandle) -> AsyncIterator[TaskCtl]:
        yield TaskCtl.report_progress("parsing", 10)
        autojump_clock.jump(10)  # synchronous work past the 5 s deadline
        raise ConnectionError("upstream reset")

    ends: list[Ended] = []
    async with open_task_manager() as manager:
        await manager.start("job", "T", "chat", plugin, on_terminal=recorder(ends), task_timeout=5)
    end = only(ends)
    assert (end.ctl.signal, end.ctl.message, end.ctl.attempt) == (TaskSignal.FAIL, "upstream reset", 1)


# -- attempt numbers in the states ---------------------------------------------------------------------------


async def test_states_carry_the_attempt_number(autojump_clock: trio.testing.MockClock) -> None:
    async def state_at(seconds: float) -> TaskCtl | None:
        await trio.sleep_until(t0 + seconds)
        return manager.get_state("job", "T")

    policy = RetryPolicy(attempts=3, backoff=1.0, factor=2.0)
    async with open_task_manager() as manager:
        t0 = trio.current_time()
        # Attempts of 10 seconds: 0-10, backoff 1, 11-21, backoff 2, 23-33.
        ends = await start(manager, mounted(policy), Attempts(), ["connection"], 10.0)
        assert await state_at(5) == TaskCtl(TaskSignal.PROGRESS, "attempt body 1", progress=10, attempt=1)
        backoff = await state_at(10.5)
        assert backoff == TaskCtl(
            TaskSignal.PROGRESS, "Attempt 1 of 3 failed: boom 1; retrying in 1s", progress=0, attempt=2
        )
        assert await state_at(15) == TaskCtl(TaskSignal.PROGRESS, "attempt body 2", progress=10, attempt=2)
        backoff = await state_at(22)
        assert backoff is not None
        assert backoff.message == "Attempt 2 of 3 failed: boom 2; retrying in 2s"
        assert backoff.attempt == 3
        assert await state_at(30) == TaskCtl(TaskSignal.PROGRESS, "attempt body 3", progress=10, attempt=3)
        await wait_until_idle(manager)
        assert manager.get_state("job", "T") == only(ends).ctl
    assert only(ends).at == t0 + 33
    assert only(ends).ctl.attempt == 3


async def test_queued_and_started_reports_carry_attempt_1(autojump_clock: trio.testing.MockClock) -> None:
    plugin = Plugin(name="Retries", module_name="retries")
    plugin.mount_async_task("job", retry=RetryPolicy(attempts=2), max_concurrent=1)(scripted)
    async with open_task_manager() as manager:
        await manager.start("job", "first", "chat", plugin, Attempts(), ["ok"], 5.0)
        await manager.start("job", "second", "chat", plugin, Attempts(), ["ok"], 5.0)
        queued = manager.get_state("job", "second")
        assert queued is not None
        assert queued.message.startswith("Queued: ")
        assert queued.attempt == 1
        async with manager.watch("job", "second") as events:
            reports = [event.ctl async for event in events]
    assert reports[0].message.startswith("Queued: "), "the current state comes first"
    assert reports[1].message == "Started: a concurrency slot came free"
    assert [ctl.attempt for ctl in reports] == [1, 1, 1, 1]
    assert reports[-1] == TaskCtl(TaskSignal.SUCCESS, "succeeded on attempt 1", attempt=1)


async def test_without_a_policy_states_carry_no_attempt(autojump_clock: trio.testing.MockClock) -> None:
    log = Attempts()
    async with open_task_manager() as manager:
        ends = await start(manager, mounted(None), log, ["connection"], 1.0)
        state = manager.get_state("job", "T")
        assert state is not None
        assert state.attempt is None
        await wait_until_idle(manager)
    assert only(ends).ctl.attempt is None
    assert len(log.began) == 1


# -- RetryPolicy -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failed_attempt", "error", "shown"),
    [(0, ValueError, "0"), (-3, ValueError, "-3"), (True, TypeError, "True"), (2.5, TypeError, "2.5"),
     (math.nan, TypeError, "nan"), ("2", TypeError, "'2'"), (None, TypeError, "None")],
)
def test_delay_needs_the_number_of_a_failed_attempt(failed_attempt: Any, error: type[Exception], shown: str) -> None:
    """Attempts count from 1: anything else is refused, naming it, not turned into a delay."""
    refused = rf"failed_attempt must be .*>= 1 \(1 for the first attempt\), got {re.escape(shown)}"
    with pytest.raises(error, match=refused):
        RetryPolicy(backoff=0.0).delay(failed_attempt)


def test_delay_grows_by_factor_and_is_capped() -> None:
    policy = RetryPolicy()
    assert (policy.attempts, policy.backoff, policy.factor, policy.max_backoff) == (3, 1.0, 2.0, 60.0)
    assert policy.retry_on == (Exception,)
    assert [policy.delay(n) for n in range(1, 9)] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert policy.delay(100_000) == 60.0, "no overflow on a huge attempt number"
    assert RetryPolicy(backoff=0.5, factor=1.0).delay(7) == 0.5
    assert RetryPolicy(backoff=0.0).delay(3) == 0.0
    assert RetryPolicy(factor=1e300, max_backoff=5.0).delay(4) == 5.0


def test_retry_on_accepts_one_class_or_a_tuple() -> None:
    assert RetryPolicy(retry_on=ConnectionError).retry_on == (ConnectionError,)
    assert RetryPolicy(retry_on=(OSError, KeyError)).retry_on == (OSError, KeyError)


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"attempts": 0}, ValueError, "attempts"),
        ({"attempts": -2}, ValueError, "attempts"),
        ({"attempts": 2.0}, TypeError, "attempts"),
        ({"attempts": True}, TypeError, "attempts"),
        ({"attempts": "3"}, TypeError, "attempts"),
        ({"backoff": -1}, ValueError, "backoff"),
        ({"backoff": math.nan}, ValueError, "backoff"),
        ({"backoff": math.inf}, ValueError, "backoff"),
        ({"backoff": "1"}, TypeError, "backoff"),
        ({"factor": 0.5}, ValueError, "factor"),
        ({"factor": math.nan}, ValueError, "factor"),
        ({"factor": math.inf}, ValueError, "factor"),
        ({"factor": None}, TypeError, "factor"),
        ({"max_backoff": -0.1}, ValueError, "max_backoff"),
        ({"max_backoff": math.inf}, ValueError, "max_backoff"),
        ({"max_backoff": math.nan}, ValueError, "max_backoff"),
        ({"retry_on": KeyboardInterrupt}, TypeError, "retry_on"),
        ({"retry_on": BaseException}, TypeError, "retry_on"),
        ({"retry_on": ValueError("x")}, TypeError, "retry_on"),
        ({"retry_on": (ValueError, "x")}, TypeError, "retry_on"),
        ({"retry_on": [ValueError]}, TypeError, "retry_on"),
    ],
)
def test_retry_policy_validates_its_fields(options: dict[str, Any], error: type[Exception], named: str) -> None:
    with pytest.raises(error, match=named) as caught:
        RetryPolicy(**options)
    assert repr(options[named]) in str(caught.value)


def test_mount_async_task_needs_a_retry_policy() -> None:
    plugin = Plugin(name="Retries", module_name="retries")
    with pytest.raises(TypeError, match="RetryPolicy"):
        plugin.mount_async_task("job", retry=3)  # type: ignore[arg-type]


@pytest.mark.parametrize("factor", [2, 2.0])
def test_a_delay_that_outgrows_a_float_is_the_max_backoff(factor: float) -> None:
    """An int factor made an exact int power that no float holds (OverflowError after 1,024 attempts)."""
    assert RetryPolicy(factor=factor, max_backoff=60).delay(1025) == 60.0
    assert RetryPolicy(factor=factor, backoff=0).delay(5000) == 0.0, "no backoff stays none"
