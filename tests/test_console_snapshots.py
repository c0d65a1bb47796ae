"""Screenshot snapshots of the console's screens at 80x24, from the static fixture data
(console/fixture.py) through the real app and model: deterministic, no Redis needed.
After an intended change of the UI: `pytest tests/test_console_snapshots.py --snapshot-update`
and look at the SVGs in tests/__snapshots__/."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from textual.pilot import Pilot

from console.app import ConsoleApp
from console.fixture import HISTORY_POLLS, NOW, StaticSource, tail_lines
from console.messages import DatabaseState, TailBatch, TailState


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    """Times on screen are local: make local UTC so the screenshots match anywhere."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def demo_app() -> ConsoleApp:
    return ConsoleApp(StaticSource(), clock=lambda: NOW + HISTORY_POLLS, live=False)


async def fill(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, ConsoleApp)
    app.post_message(DatabaseState(True))
    app.post_message(TailState(True))
    app.post_message(TailBatch(tail_lines(app.source.keys)))
    for _ in range(HISTORY_POLLS):
        await app.poll_once()
    await pilot.pause()


def test_pods_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(demo_app(), run_before=fill)


def test_queues_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(demo_app(), press=["2"], run_before=fill)


def test_channels_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(demo_app(), press=["3"], run_before=fill)


def test_tail_screen_filtered(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def filtered(pilot: Pilot[None]) -> None:
        await fill(pilot)
        await pilot.press("4", "slash", *"pod=pod-2", "enter")

    assert snap_compare(demo_app(), run_before=filtered)


def test_players_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def looked_up(pilot: Pilot[None]) -> None:
        await fill(pilot)
        await pilot.press("5", *"alice", "enter")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.app.poll_once()  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(demo_app(), run_before=looked_up)


def test_drain_confirmation(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(demo_app(), press=["down", "d"], run_before=fill)


def test_help_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(demo_app(), press=["question_mark"], run_before=fill)
