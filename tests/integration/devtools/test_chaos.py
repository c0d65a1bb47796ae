"""The chaos run, short: servers SIGKILLed and restarted under load lose and double nobody."""

from __future__ import annotations

from devtools.chaos import run_chaos
from servers.common.config import Settings


def test_short_chaos_run_loses_and_duplicates_nobody(settings: Settings) -> None:
    # Game and match servers only: the run is short, and an auth server's restart (the slowest
    # to start) could take most of it on a loaded machine.
    report = run_chaos(
        settings,
        pods=2,
        duration=10.0,
        players=16,
        kill_interval=(0.5, 1.5),
        settle=20.0,
        seed=7,
        kinds=("game", "match"),
    )
    assert sum(report.kills.values()) >= 2, report.kills  # servers really died
    assert report.matches_completed > 20  # and play went on
    assert report.lost == 0, report.problems
    assert report.duplicates == 0, report.problems
    assert report.problems == []
    assert report.matches_recorded >= report.matches_completed
