"""The demo's two views of one story: plain timestamped lines, or a live ``rich`` view.

Both learn about tasks only from the :class:`~trio_tasks.TaskEvent` values of a
``manager.watch()`` stream (:meth:`task_event`) and about the conversation
from :meth:`chat`; neither asks the manager anything. ``rich`` is imported only
by :class:`LiveView`, so the library and the plain view work without it.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal, Protocol, TextIO, final

import attrs
import trio

from ._ctl import TaskSignal
from ._watch import TaskEvent

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.text import Text

__all__ = ["DemoView", "LiveView", "PlainView", "can_draw_live", "status_of"]

Status = Literal["queued", "running", "done", "failed", "cancelled"]

_TERMINAL_STATUS: dict[TaskSignal, Status] = {
    TaskSignal.SUCCESS: "done",
    TaskSignal.FAIL: "failed",
    TaskSignal.CANCEL: "cancelled",
}
def status_of(event: TaskEvent) -> Status:
    """What a task is doing, as its watch event tells.

    >>> from trio_tasks import TaskCtl, TaskEvent
    >>> status_of(TaskEvent("render", "R1", "chat", TaskCtl.report_progress("Compiling...", 70), 1.0))
    'running'
    >>> status_of(TaskEvent("render", "R1", "chat", TaskCtl.cancel(), 2.0, status="ended"))
    'cancelled'
    """
    if event.ctl.is_terminal:
        return _TERMINAL_STATUS[event.ctl.signal]
    return "queued" if event.status == "queued" else "running"


class DemoView(Protocol):
    """What the demo's run loop needs from a view."""

    def begin(self, t0: float) -> None:
        """The demo starts now (``trio.current_time()``); timestamps count from here."""

    def chat(self, who: str, text: str) -> None:
        """A line of the conversation: ``who`` is ``user``, ``agent``, ``note`` or ``demo``."""

    def task_event(self, event: TaskEvent) -> None:
        """One event of the ``manager.watch()`` stream."""

    async def run(self) -> None:
        """Draw until :meth:`close` (the plain view returns at once)."""

    def close(self) -> None:
        """Every line and event has been shown: draw the last frame and stop."""


@attrs.define
class Row:
    """What a view knows of one task, from its watch events."""

    key: str
    percent: float = 0.0
    status: Status = "running"
    message: str = ""
    attempt: int | None = None
    changed_at: float = 0.0


@final
class Board:
    """The latest state of every task seen in the watch stream, in order of first appearance."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}

    def update(self, event: TaskEvent) -> Row:
        """Fold ``event`` into its task's row and return the row."""
        key = f"{event.task_type}:{event.task_id}"
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = Row(key)
        ctl = event.ctl
        row.status = status_of(event)
        row.message = ctl.message
        row.changed_at = event.at
        if ctl.attempt is not None:
            row.attempt = ctl.attempt
        if ctl.progress is not None:
            row.percent = float(ctl.progress)
        elif ctl.signal is TaskSignal.SUCCESS:
            row.percent = 100.0
        return row

    def counts(self) -> dict[Status, int]:
        """How many tasks are in each status (only the statuses some task is in)."""
        counts: dict[Status, int] = {}
        for row in self.rows.values():
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts


@final
class PlainView:
    """One timestamped line per chat line and per task event, for logs and pipes::

        [   3.20s] task   webapp_dev:DEV_1      25% running   Generating code...
        [   4.00s] user   Migrate the database, but give up after 5 seconds.
    """

    def __init__(self, write: Callable[[str], object] = print) -> None:
        self._write = write
        self._board = Board()
        self._t0 = 0.0

    def begin(self, t0: float) -> None:
        """Timestamps count from ``t0``."""
        self._t0 = t0

    def chat(self, who: str, text: str) -> None:
        """Write a chat line."""
        self._write(f"[{trio.current_time() - self._t0:7.2f}s] {who:<6} {text}")

    def task_event(self, event: TaskEvent) -> None:
        """Write a task line: key, percent, status, message, and the attempt of a retried task."""
        row = self._board.update(event)
        attempt = "" if event.ctl.attempt is None else f"  (attempt {event.ctl.attempt})"
        self._write(
            f"[{event.at - self._t0:7.2f}s] task   {row.key:<20} {row.percent:>3.0f}% {row.status:<9} "
            f"{row.message}{attempt}"
        )

    async def run(self) -> None:
        """Nothing to draw: every line is written as it comes."""
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """Nothing to close."""


_STYLE: dict[Status, str] = {
    "queued": "blue",
    "running": "cyan",
    "done": "green",
    "failed": "red",
    "cancelled": "yellow",
}
_WHO_STYLE = {"user": "bold cyan", "agent": "bold green", "note": "dim", "demo": "bold magenta"}
_BAR_WIDTH = 28
_MIN_CHAT_LINES = 6


def _fit(rows: list[Row], room: int) -> tuple[list[Row], list[Row]]:
    """Split ``rows`` into those shown (in order) and those hidden, so that the shown ones
    plus one summary line fit in ``room`` lines: ended tasks are hidden first (the longest
    ended first), then queued ones (the last in line first)."""
    if len(rows) <= room:
        return rows, []
    excess = len(rows) - max(room - 1, 0)
    ended = sorted((row for row in rows if row.status in ("done", "failed", "cancelled")), key=lambda r: r.changed_at)
    queued = [row for row in reversed(rows) if row.status == "queued"]
    running = [row for row in reversed(rows) if row.status == "running"]
    hidden = {id(row) for row in [*ended, *queued, *running][:excess]}
    return [row for row in rows if id(row) not in hidden], [row for row in rows if id(row) in hidden]


@final
class LiveView:
    """A live terminal view drawn with ``rich``: a header, one progress bar per task, the chat below.

    It redraws when an event or a chat line arrives, at most ``fps`` times a
    second of real time (trio time runs ``speed`` times faster than real time).
    """

    def __init__(self, *, speed: float = 1.0, console: Console | None = None, fps: float = 15.0) -> None:
        from rich.console import Console

        self._console = console if console is not None else Console()
        self._interval = speed / fps
        self._board = Board()
        self._chat: deque[tuple[float, str, str]] = deque(maxlen=500)
        self._dirty = trio.Event()
        self._closed = False
        self._t0 = 0.0

    def begin(self, t0: float) -> None:
        """Timestamps count from ``t0``."""
        self._t0 = t0

    def chat(self, who: str, text: str) -> None:
        """Add a chat line; redraw soon."""
        self._chat.append((trio.current_time() - self._t0, who, text))
        self._dirty.set()

    def task_event(self, event: TaskEvent) -> None:
        """Update the task's row; redraw soon."""
        self._board.update(event)
        self._dirty.set()

    def close(self) -> None:
        """Draw the last frame and stop :meth:`run`; the last frame stays on the terminal."""
        self._closed = True
        self._dirty.set()

    async def run(self) -> None:
        """Redraw whenever something changed (never more than ``fps`` times a second) until closed."""
        from rich.live import Live

        with Live(self.render(), console=self._console, auto_refresh=False) as live:
            while True:
                await self._dirty.wait()
                self._dirty = trio.Event()
                live.update(self.render(), refresh=True)
                if self._closed:
                    break
                await trio.sleep(self._interval)
        if self._chat:  # the last line (the demo's verdict) in full below the view, which may have cut it short
            _, who, text = self._chat[-1]
            self._console.print(f"{who}: {text}", markup=False, highlight=False)

    def render(self) -> RenderableType:
        """The whole view as it stands, sized to the console."""
        from rich.console import Group
        from rich.panel import Panel

        height = self._console.size.height
        tasks = Panel(
            self._task_table(max(height - 8 - _MIN_CHAT_LINES, 3)),
            title="[bold]background tasks[/] [dim](from manager.watch())[/]",
            title_align="left",
            border_style="blue",
        )
        tasks_height = len(self._console.render_lines(tasks, pad=False))
        chat_lines = max(height - 1 - tasks_height - 2 - 1, _MIN_CHAT_LINES)
        chat = Panel(
            Group(*self._chat_lines(chat_lines)),
            title="[bold]chat[/]",
            title_align="left",
            border_style="green",
            height=chat_lines + 2,
        )
        return Group(self._header(), tasks, chat)

    def _header(self) -> Text:
        from rich.text import Text

        header = Text.assemble(
            ("trio_tasks demo", "bold magenta"), (f"  {trio.current_time() - self._t0:6.1f}s", "bold"), "   "
        )
        counts = self._board.counts()
        parts = [(f"{counts[status]} {status}", _STYLE[status]) for status in _STYLE if status in counts]
        for index, part in enumerate(parts):
            header.append(" · " if index else "")
            header.append(*part)
        return header

    def _task_table(self, room: int) -> RenderableType:
        from rich import box
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        table = Table(box=box.SIMPLE_HEAD, expand=True, show_edge=False, pad_edge=False, header_style="bold dim")
        table.add_column("task", no_wrap=True, style="bold", min_width=20)
        bar_width = _BAR_WIDTH if self._console.size.width >= 120 else _BAR_WIDTH // 2
        table.add_column("progress", width=bar_width, no_wrap=True)
        table.add_column("%", justify="right", width=4, no_wrap=True)
        table.add_column("status", width=9, no_wrap=True)
        table.add_column("try", justify="right", width=3, no_wrap=True)
        table.add_column("latest message", no_wrap=True, overflow="ellipsis", ratio=1)
        shown, hidden = _fit(list(self._board.rows.values()), room)
        for row in shown:
            style = _STYLE[row.status]
            bar = ProgressBar(
                total=100,
                completed=row.percent,
                width=bar_width,
                style="grey30",
                complete_style=style,
                finished_style=style,
            )
            message = Text(row.message, style="red" if row.status == "failed" else "")
            table.add_row(
                row.key, bar, f"{row.percent:.0f}%", Text(row.status, style=style), str(row.attempt or ""), message
            )
        if hidden:
            table.add_row(Text(f"… {len(hidden)} more", style="dim"), "", "", "", "", _summary(hidden))
        return table

    def _chat_lines(self, count: int) -> Iterable[Text]:
        from rich.text import Text

        for at, who, text in list(self._chat)[-count:]:
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(f"{at:6.1f}s ", style="dim")
            line.append(f"{who:<6} ", style=_WHO_STYLE.get(who, ""))
            line.append(text, style="dim" if who == "note" else "")
            yield line


def _summary(rows: list[Row]) -> Text:
    from rich.text import Text

    counts: dict[Status, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    summary = Text(style="dim")
    for index, status in enumerate(status for status in _STYLE if status in counts):
        summary.append(", " if index else "")
        summary.append(f"{counts[status]} {status}", style=_STYLE[status])
    return summary


def can_draw_live(stream: TextIO | None, hint_to: TextIO | None = None) -> bool:
    """True if ``stream`` is a terminal that can redraw (not ``TERM=dumb``) and ``rich`` is installed.

    On a terminal without ``rich``, write a one-line hint to ``hint_to``
    (stderr by default) and return False: the demo then prints plain lines.
    (``stream`` is None when the process has no stdout: then it is False.)
    """
    if stream is None or not stream.isatty() or os.environ.get("TERM") == "dumb":
        return False
    try:
        import rich  # noqa: F401
    except ImportError:
        print(
            "trio_tasks demo: install rich for the live view (pip install 'trio_tasks[demo]'); printing plain lines",
            file=hint_to if hint_to is not None else sys.stderr,
        )
        return False
    return True
