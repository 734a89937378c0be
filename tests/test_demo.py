"""The demo runs to its scripted end."""

from __future__ import annotations

import trio
import trio.testing

from trio_tasks import TaskSignal
from trio_tasks._demo import run_demo


def test_demo_reaches_every_scripted_terminal() -> None:
    lines: list[str] = []
    outcomes = trio.run(run_demo, 1.0, lines.append, clock=trio.testing.MockClock(autojump_threshold=0))
    assert outcomes == {
        "webapp_dev:DEV_1": TaskSignal.SUCCESS,
        "video_render:VID_1": TaskSignal.CANCEL,
        "flaky_api:API_1": TaskSignal.FAIL,
        "approval:OK_1": TaskSignal.SUCCESS,
    }
    assert any("a preview of 'a todo app' is up" in line for line in lines)
    assert lines[-1].endswith("All background work has ended. Bye!")
