"""Glicko-2: the worked example, deviation growth and decay, rating periods, match updates."""

from __future__ import annotations

import pytest

from servers.common import glicko2


def test_glicko2_matches_glickmans_worked_example() -> None:
    """Glickman, "Example of the Glicko-2 system": 1500/200/0.06 against 1400/30 (win),
    1550/100 (loss), 1700/300 (loss), tau 0.5 -> 1464.06 / 151.52 / 0.05999."""
    after = glicko2.rate(
        glicko2.Rating(1500, 200, 0.06),
        [
            glicko2.Game(glicko2.Rating(1400, 30), 1.0),
            glicko2.Game(glicko2.Rating(1550, 100), 0.0),
            glicko2.Game(glicko2.Rating(1700, 300), 0.0),
        ],
        tau=0.5,
    )
    assert after.rating == pytest.approx(1464.06, abs=0.02)
    assert after.rd == pytest.approx(151.52, abs=0.01)
    assert after.volatility == pytest.approx(0.05999, abs=0.00001)


def test_no_games_only_grows_the_deviation() -> None:
    before = glicko2.Rating(1600, 50, 0.06)
    after = glicko2.rate(before, [])
    assert after.rating == 1600 and after.volatility == 0.06
    assert after.rd == pytest.approx((50**2 + (0.06 * glicko2.SCALE) ** 2) ** 0.5)


@pytest.mark.parametrize(
    ("periods", "expected_rd"),
    [
        (0, 50.0),
        (1, (50**2 + (0.06 * glicko2.SCALE) ** 2) ** 0.5),
        (10, (50**2 + 10 * (0.06 * glicko2.SCALE) ** 2) ** 0.5),
        (10_000, 350.0),  # capped at a new player's RD
    ],
)
def test_inactivity_decay(periods: int, expected_rd: float) -> None:
    assert glicko2.decay(glicko2.Rating(1600, 50, 0.06), periods).rd == pytest.approx(expected_rd)


@pytest.mark.parametrize(
    ("last", "now", "period", "expected"),
    [
        (None, 1000.0, 10.0, 0),  # never rated
        (0.0, 9.9, 10.0, 0),
        (0.0, 10.0, 10.0, 1),
        (0.0, 95.0, 10.0, 9),
        (50.0, 40.0, 10.0, 0),  # clocks: never negative
    ],
)
def test_rating_periods(last: float | None, now: float, period: float, expected: int) -> None:
    assert glicko2.periods_between(last, now, period) == expected


@pytest.mark.parametrize("score", [1.0, 0.5, 0.0])
def test_a_match_moves_both_players_consistently(score: float) -> None:
    one, two = glicko2.Rating(1500, 350, 0.06), glicko2.Rating(1500, 350, 0.06)
    new_one, new_two = glicko2.rate_match(one, two, score)
    # Equal players: the winner gains what the loser loses; a draw changes no rating.
    assert new_one.rating - 1500 == pytest.approx(1500 - new_two.rating)
    assert (new_one.rating > 1500) == (score == 1.0)
    assert new_one.rd < 350 and new_two.rd < 350
    if score == 0.5:
        assert new_one.rating == pytest.approx(1500)


def test_upsets_move_ratings_more_than_expected_results() -> None:
    strong, weak = glicko2.Rating(1800, 80, 0.06), glicko2.Rating(1400, 80, 0.06)
    expected_win, _ = glicko2.rate_match(strong, weak, 1.0)
    upset_loss, _ = glicko2.rate_match(strong, weak, 0.0)
    assert 0 < expected_win.rating - 1800 < 1800 - upset_loss.rating
