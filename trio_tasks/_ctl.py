"""Task control signals: the values a task body yields to report how it is doing."""

from __future__ import annotations

import enum
from typing import Any, final

import attrs

from ._checks import safe_repr, shown

__all__ = ["TaskCtl", "TaskSignal"]


class TaskSignal(str, enum.Enum):
    """What a :class:`TaskCtl` reports.

    The values are plain strings, so a signal compares equal to its name:

    >>> TaskSignal.SUCCESS == "success"
    True
    >>> TaskSignal("cancel")
    <TaskSignal.CANCEL: 'cancel'>
    """

    PROGRESS = "progress"
    SUCCESS = "success"
    FAIL = "fail"
    CANCEL = "cancel"


def _check_percent(percent: object) -> None:
    if isinstance(percent, bool) or not isinstance(percent, (int, float)):
        raise TypeError(
            f"percent must be an int or float from 0 to 100, got {safe_repr(percent)} "
            f"({type(percent).__name__})"
        )
    if not 0 <= percent <= 100:  # NaN fails both comparisons
        detail = "NaN" if percent != percent else "out of range"  # (not math.isnan: no float holds some ints)
        raise ValueError(f"percent must be from 0 to 100, got {shown(percent)} ({detail})")


@final
@attrs.frozen
class TaskCtl:
    """One report from a task body: progress, or the task's terminal outcome.

    Build it with the constructors, which check their arguments at once:
    :meth:`report_progress`, :meth:`success`, :meth:`fail` and :meth:`cancel`.
    A task body yields these; the first terminal one ends the task:

    >>> ctl = TaskCtl.success("Done", data={"url": "https://example.org"})
    >>> ctl.signal, ctl.message, ctl.data, ctl.progress, ctl.is_terminal
    (<TaskSignal.SUCCESS: 'success'>, 'Done', {'url': 'https://example.org'}, None, True)
    >>> TaskCtl.report_progress("Compiling...", 70).progress
    70

    Attributes:
        signal: which kind of report this is.
        message: human-readable text for the agent or the user.
        data: the payload of a success, or the error of a failure.
        progress: the percentage (0 to 100) of a progress report; ``None``
            for every other signal.
        attempt: for a task mounted with a :class:`~trio_tasks.RetryPolicy`,
            the attempt (1-based) this report belongs to, which the task
            manager sets; task bodies need not. For other tasks it is what
            the body gave (``None`` unless it set one).
    """

    signal: TaskSignal
    message: str
    data: Any = None
    progress: float | None = None
    attempt: int | None = None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.signal, TaskSignal):
            raise TypeError(f"signal must be a TaskSignal, got {safe_repr(self.signal)}")
        if not isinstance(self.message, str):
            raise TypeError(
                f"message must be a str, got {safe_repr(self.message)} "
                f"({type(self.message).__name__})"
            )
        if self.signal is TaskSignal.PROGRESS:
            _check_percent(self.progress)
        elif self.progress is not None:
            raise ValueError(
                f"progress is only set for progress reports, "
                f"got progress={safe_repr(self.progress)} with signal {self.signal.value!r}"
            )
        if self.attempt is not None:
            if isinstance(self.attempt, bool) or not isinstance(self.attempt, int):
                raise TypeError(f"attempt must be None or an int >= 1, got {safe_repr(self.attempt)}")
            if self.attempt < 1:
                raise ValueError(f"attempt must be None or an int >= 1, got {shown(self.attempt)}")

    @property
    def is_terminal(self) -> bool:
        """True for success, fail and cancel, the reports that end a task; False for progress.

        >>> TaskCtl.report_progress("Half way", 50).is_terminal
        False
        """
        return self.signal is not TaskSignal.PROGRESS

    @classmethod
    def report_progress(cls, message: str, percent: float = 0) -> TaskCtl:
        """A progress report; ``percent`` is a number from 0 to 100.

        >>> ctl = TaskCtl.report_progress("Downloading...", 20)
        >>> ctl.signal, ctl.message, ctl.progress
        (<TaskSignal.PROGRESS: 'progress'>, 'Downloading...', 20)
        """
        return cls(TaskSignal.PROGRESS, message, None, percent)

    @classmethod
    def success(cls, message: str = "Done", data: Any = None) -> TaskCtl:
        """The task succeeded; ``data`` carries its result.

        >>> TaskCtl.success(data=42).message
        'Done'
        """
        return cls(TaskSignal.SUCCESS, message, data)

    @classmethod
    def fail(cls, message: str, error: Any = None) -> TaskCtl:
        """The task failed; ``error`` (often the exception) becomes ``data``.

        >>> TaskCtl.fail("API timeout", TimeoutError()).data
        TimeoutError()
        """
        return cls(TaskSignal.FAIL, message, error)

    @classmethod
    def cancel(cls, message: str = "Cancelled") -> TaskCtl:
        """The task was cancelled.

        >>> TaskCtl.cancel().is_terminal
        True
        """
        return cls(TaskSignal.CANCEL, message)
