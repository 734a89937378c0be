"""RetryPolicy: how often, and after how long, a failing task body is run again."""

from __future__ import annotations

import math
import sys
from typing import final

import attrs

from ._checks import check_number, safe_repr, shown
from ._errors import WaitCancelled

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

__all__ = ["RetryPolicy"]


def _to_exception_types(value: type[Exception] | tuple[type[Exception], ...]) -> tuple[type[Exception], ...]:
    given: tuple[object, ...] = value if isinstance(value, tuple) else (value,)
    types = tuple(kind for kind in given if isinstance(kind, type) and issubclass(kind, Exception))
    if not types or len(types) != len(given):
        raise TypeError(
            f"RetryPolicy retry_on must be an Exception subclass or a tuple of them, got {safe_repr(value)}; "
            f"cancellation and BaseExceptions (KeyboardInterrupt) are never retried"
        )
    return types


@final
@attrs.frozen
class RetryPolicy:
    """Run a task body again when it raises, with exponential backoff.

    ``attempts`` counts every run, the first included. An attempt that raises
    an exception matching ``retry_on`` is run again, with the same arguments,
    after ``backoff * factor ** (n - 1)`` seconds (at most ``max_backoff``)
    following failed attempt ``n``. An attempt that yields its own
    ``TaskCtl.fail`` is not retried, nor is a cancel or a
    :class:`~trio_tasks.WaitCancelled`, nor any failure once a cancel of the
    task has been requested or has reached it, its deadline included (it
    ends FAIL). The task's ``task_timeout``
    covers all attempts and backoffs. ``on_terminal`` fires once, after the
    last attempt; while retrying, the task's states carry the attempt number
    in :attr:`TaskCtl.attempt <trio_tasks.TaskCtl.attempt>`. Give it to the
    task type::

        @plugin.mount_async_task("fetch", retry=RetryPolicy(attempts=3, retry_on=(ConnectionError,)))
        async def fetch(handle, url: str): ...

    The delays after failed attempts 1, 2 and 3:

    >>> policy = RetryPolicy(attempts=4, backoff=1.0, factor=2.0, max_backoff=3.0)
    >>> [policy.delay(n) for n in (1, 2, 3)]
    [1.0, 2.0, 3.0]

    A cancel during the backoff ends the task CANCEL at once.
    """

    attempts: int = 3
    backoff: float = 1.0
    factor: float = 2.0
    max_backoff: float = 60.0
    retry_on: tuple[type[Exception], ...] = attrs.field(default=(Exception,), converter=_to_exception_types)

    def __attrs_post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise TypeError(f"RetryPolicy attempts must be an int, got {safe_repr(self.attempts)}")
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy attempts counts every run, the first included: it must be >= 1, "
                             f"got {shown(self.attempts)}")
        check_number("RetryPolicy backoff", self.backoff, unit=" seconds")
        check_number("RetryPolicy factor", self.factor, low=1)
        check_number("RetryPolicy max_backoff", self.max_backoff, unit=" seconds")

    def delay(self, failed_attempt: int) -> float:
        """Seconds to wait after attempt number ``failed_attempt`` (1-based) has failed.

        >>> RetryPolicy(backoff=2.0).delay(3)
        8.0
        """
        if isinstance(failed_attempt, bool) or not isinstance(failed_attempt, int):
            raise TypeError(
                f"failed_attempt must be an int >= 1 (1 for the first attempt), got {safe_repr(failed_attempt)} "
                f"({type(failed_attempt).__name__})"
            )
        if failed_attempt < 1:
            raise ValueError(f"failed_attempt must be >= 1 (1 for the first attempt), got {shown(failed_attempt)}")
        if not self.backoff:
            return 0.0
        try:
            growth = float(self.factor) ** (failed_attempt - 1)  # (a float: an int would grow past what one holds)
        except OverflowError:
            growth = math.inf
        return float(min(self.backoff * growth, self.max_backoff))

    def retries(self, exc: BaseException) -> bool:
        """True if an attempt that raised ``exc`` should run again (attempts allowing).

        An exception group is retried when every exception in it matches.

        >>> policy = RetryPolicy(retry_on=ConnectionError)
        >>> policy.retries(ConnectionError("503")), policy.retries(ValueError("bad JSON"))
        (True, False)
        """
        if isinstance(exc, BaseExceptionGroup):
            return exc.split(self.retry_on)[1] is None and exc.split(WaitCancelled)[0] is None
        return isinstance(exc, self.retry_on) and not isinstance(exc, WaitCancelled)
