"""Adversarial clients under chaos, and the two-pods-two-modes race probe: whatever players do,
the stack ends with no double activity, no double or ghost ticket, empty registries and its
resources back near the baseline."""

from __future__ import annotations

from devtools.chaos import run_chaos
from devtools.race import run_race
from servers.common.config import Settings


def test_short_adversarial_chaos_run_breaks_no_invariant(settings: Settings) -> None:
    # Normal players (each ticket accounted for) next to adversarial ones; game and match
    # servers killed, as in test_chaos.py.
    report = run_chaos(
        settings,
        pods=2,
        duration=10.0,
        players=12,
        kill_interval=(1.0, 3.0),
        settle=8.0,
        seed=11,
        kinds=("game", "match"),
        clients="mixed",
        adversaries=8,
    )
    assert sum(report.adversarial["scenarios"].values()) >= 20, report.adversarial
    assert report.matches_completed > 10
    assert report.lost == 0, report.problems
    assert report.duplicates == 0, report.problems
    assert report.violations == dict.fromkeys(report.violations, 0), report.violation_details
    assert report.quiescent


def test_race_probe_finds_no_double_queue_nor_ghost(settings: Settings) -> None:
    report = run_race(settings, pods=2, attempts=100, concurrency=8, grace=0.5, seed=3)
    assert report.attempts == 100
    assert report.double_queues == 0, report.details
    assert report.ghosts == 0, report.details
    assert report.double_activity == 0, report.details
