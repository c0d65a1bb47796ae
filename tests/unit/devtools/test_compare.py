"""The figures and ratios `cardgame bench compare` prints, from each side's own JSON."""

from __future__ import annotations

import pytest

from devtools.bench.compare import cardgame_figures, peer_figures, ratios

# The shape of the Colyseus peer's results/cC.json (load.js), trimmed to what is read.
PEER = {
    "window_s": 25.0,
    "matches_per_s": 1600.0,
    "cpu": {"server_pct_of_one_core": 70.0, "loadgen_pct_of_one_core": 98.0},
}
# The shape of a `cardgame bench e2e` result, trimmed likewise.
OURS = {
    "matches_per_s": 400.0,
    "matches_completed": 10_000,
    "processes": {"game-1": {"cpu_s": 12.0}, "redis": {"cpu_s": 3.0}, "load": {"cpu_s": 5.0}},
}


def test_cpu_per_match_counts_every_process_of_each_side() -> None:
    # Colyseus: (0.70 + 0.98) cores x 25 s = 42 s over 40,000 matches.
    assert peer_figures(PEER) == {"matches_per_s": 1600.0, "cpu_ms_per_match": 1.05}
    # Ours: 20 s over 10,000 matches.
    assert cardgame_figures(OURS) == {"matches_per_s": 400.0, "cpu_ms_per_match": 2.0}


def test_ratios_are_shares_of_the_peer() -> None:
    assert ratios(cardgame_figures(OURS), peer_figures(PEER)) == {
        "throughput": 0.25,
        "cpu_per_match": pytest.approx(1.905, abs=0.001),
    }


def test_missing_cpu_figures_leave_the_cpu_ratio_out() -> None:
    peer = peer_figures({**PEER, "cpu": {"server_pct_of_one_core": None}})
    assert peer["cpu_ms_per_match"] is None
    assert ratios(cardgame_figures(OURS), peer)["cpu_per_match"] is None
