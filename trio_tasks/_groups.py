"""Groups of tasks: awaited together (Countdown), picked together (Filter)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, final

import attrs
import trio

from ._checks import check_str, safe_repr
from ._plugin import Plugin

if TYPE_CHECKING:
    from ._handle import AsyncTaskHandle

__all__ = ["Countdown", "Filter", "tick"]


@final
class Countdown:
    """Sets ``event`` once every task it was given has ended (internal).

    Tasks that have already ended are not counted, so a countdown over ended
    tasks is set at once.
    """

    __slots__ = ("event", "remaining")

    def __init__(self, handles: Iterable[AsyncTaskHandle]) -> None:
        self.event = trio.Event()
        self.remaining = 0
        remaining = 0
        for handle in handles:
            if handle._ended_at is None:
                remaining += 1
                if handle._countdowns is None:
                    handle._countdowns = [self]
                else:
                    handle._countdowns.append(self)
        self.remaining = remaining
        if remaining == 0:
            self.event.set()

    def tick(self) -> None:
        """One of the tasks has ended."""
        self.remaining -= 1
        if self.remaining == 0:
            self.event.set()


def tick(countdowns: list[Countdown] | None) -> None:
    """A task has ended (and its callback has run, or begun): tell the countdowns that wait for it."""
    for countdown in countdowns or ():
        countdown.tick()


@final
@attrs.frozen
class Filter:
    """Which tasks ``stop_all`` and ``get_running_tasks`` look at: all that match every given field."""

    plugin: Plugin | None = None
    task_type: str | None = None
    chat_key: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.plugin is not None and not isinstance(self.plugin, Plugin):
            raise TypeError(f"the plugin filter must be a trio_tasks.Plugin or None, got {safe_repr(self.plugin)}")
        if self.task_type is not None:
            check_str("the task_type filter", self.task_type)
        if self.chat_key is not None:
            check_str("the chat_key filter", self.chat_key)

    @property
    def everything(self) -> bool:
        """True when no field is given: every task matches."""
        return self.plugin is None and self.task_type is None and self.chat_key is None

    def select(self, handles: Iterable[AsyncTaskHandle]) -> list[AsyncTaskHandle]:
        """The handles that match, in their order."""
        if self.everything:
            return list(handles)
        plugin, task_type, chat_key = self.plugin, self.task_type, self.chat_key
        return [
            handle
            for handle in handles
            if (plugin is None or handle.plugin is plugin)
            and (task_type is None or handle.task_type == task_type)
            and (chat_key is None or handle.chat_key == chat_key)
        ]
