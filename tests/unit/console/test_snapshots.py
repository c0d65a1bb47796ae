"""Screenshot snapshots of the console's screens at 80x24, from the static fixture data
(console/fixture.py) through the real app and model: deterministic, no Redis needed.
After an intended change of the UI: `pytest tests/unit/console/test_snapshots.py
--snapshot-update` and look at the SVGs in tests/unit/console/__snapshots__/test_snapshots/.

The app runs in the test session's event loop (`run_test`), compared with syrupy through
pytest-textual-snapshot's SVG extension. Not through its `snap_compare` fixture: that runs
each app with `App.run()`, a second event loop in the process, after which a later test
sharing the session loop (the three match servers of tests/integration/match/test_loop.py)
sometimes hung."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy.assertion import SnapshotAssertion
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


@pytest.fixture
def svg(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(SVGImageExtension)


async def fill(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, ConsoleApp)
    app.post_message(DatabaseState(True))
    app.post_message(TailState(True))
    app.post_message(TailBatch(tail_lines(app.source.keys)))
    for _ in range(HISTORY_POLLS):
        await app.poll_once()
    await pilot.pause()


async def screenshot(
    *keys: str, then: Callable[[Pilot[None]], Awaitable[None]] | None = None
) -> str:
    app = demo_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await fill(pilot)
        await pilot.press(*keys)
        if then is not None:
            await then(pilot)
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()
        return app.export_screenshot(title=app.title)


async def test_pods_screen(svg: SnapshotAssertion) -> None:
    assert await screenshot() == svg


async def test_queues_screen(svg: SnapshotAssertion) -> None:
    assert await screenshot("2") == svg


async def test_channels_screen(svg: SnapshotAssertion) -> None:
    assert await screenshot("3") == svg


async def test_tail_screen_filtered(svg: SnapshotAssertion) -> None:
    assert await screenshot("4", "slash", *"pod=pod-2", "enter") == svg


async def test_players_screen(svg: SnapshotAssertion) -> None:
    async def looked_up(pilot: Pilot[None]) -> None:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.app.poll_once()  # type: ignore[attr-defined]
        await pilot.pause()

    assert await screenshot("5", *"alice", "enter", then=looked_up) == svg


async def test_drain_confirmation(svg: SnapshotAssertion) -> None:
    assert await screenshot("down", "d") == svg


async def test_help_screen(svg: SnapshotAssertion) -> None:
    assert await screenshot("question_mark") == svg
