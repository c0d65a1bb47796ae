"""Glicko-2 (Glickman, "Example of the Glicko-2 system", 2013): pure code, no I/O.

Ratings are kept on the Glicko scale (1500 / 350 / 0.06 for a new player); the update works on
the Glicko-2 scale internally (mu = (r - 1500) / 173.7178, phi = RD / 173.7178).

How the game uses it (see docs/architecture.md, "Ratings"):

* every Ranked match is a rating period of its own for its two players, with one game;
* before that, a player's RD grows for the whole rating periods (`period_seconds`, configured)
  that passed since their last rated game, as step 6 of the paper does for a player who did
  not compete: phi* = sqrt(phi^2 + n * sigma^2), capped at the RD of a new player.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

SCALE = 173.7178
DEFAULT_RATING = 1500.0
DEFAULT_RD = 350.0
DEFAULT_VOLATILITY = 0.06
DEFAULT_TAU = 0.5
EPSILON = 0.000001


@dataclass(frozen=True)
class Rating:
    rating: float = DEFAULT_RATING
    rd: float = DEFAULT_RD
    volatility: float = DEFAULT_VOLATILITY


@dataclass(frozen=True)
class Game:
    """One game against an opponent as they stood at the start of the period."""

    opponent: Rating
    score: float  # 1 win, 0.5 draw, 0 loss


def _g(phi: float) -> float:
    return 1.0 / math.sqrt(1.0 + 3.0 * phi * phi / (math.pi * math.pi))


def _e(mu: float, mu_j: float, phi_j: float) -> float:
    return 1.0 / (1.0 + math.exp(-_g(phi_j) * (mu - mu_j)))


def _new_volatility(sigma: float, phi: float, v: float, delta: float, tau: float) -> float:
    """Step 5: the Illinois algorithm on f(x) = 0, x = ln(sigma'^2)."""
    a = math.log(sigma * sigma)

    def f(x: float) -> float:
        ex = math.exp(x)
        return (ex * (delta * delta - phi * phi - v - ex) / (2.0 * (phi * phi + v + ex) ** 2)) - (
            x - a
        ) / (tau * tau)

    big_a = a
    if delta * delta > phi * phi + v:
        big_b = math.log(delta * delta - phi * phi - v)
    else:
        k = 1
        while f(a - k * tau) < 0:
            k += 1
        big_b = a - k * tau
    f_a, f_b = f(big_a), f(big_b)
    while abs(big_b - big_a) > EPSILON:
        big_c = big_a + (big_a - big_b) * f_a / (f_b - f_a)
        f_c = f(big_c)
        if f_c * f_b <= 0:
            big_a, f_a = big_b, f_b
        else:
            f_a /= 2.0
        big_b, f_b = big_c, f_c
    return math.exp(big_a / 2.0)


def rate(
    player: Rating, games: Sequence[Game], tau: float = DEFAULT_TAU, max_rd: float = DEFAULT_RD
) -> Rating:
    """The player's rating after one rating period with `games` (steps 2 to 8 of the paper).

    With no games only the deviation grows (step 6 alone)."""
    mu = (player.rating - DEFAULT_RATING) / SCALE
    phi = player.rd / SCALE
    sigma = player.volatility
    if not games:
        return Rating(
            player.rating, min(max_rd, math.sqrt(phi * phi + sigma * sigma) * SCALE), sigma
        )
    v_inv = 0.0
    delta_sum = 0.0
    for game in games:
        mu_j = (game.opponent.rating - DEFAULT_RATING) / SCALE
        phi_j = game.opponent.rd / SCALE
        e = _e(mu, mu_j, phi_j)
        g = _g(phi_j)
        v_inv += g * g * e * (1.0 - e)
        delta_sum += g * (game.score - e)
    v = 1.0 / v_inv
    delta = v * delta_sum
    sigma_new = _new_volatility(sigma, phi, v, delta, tau)
    phi_star = math.sqrt(phi * phi + sigma_new * sigma_new)
    phi_new = 1.0 / math.sqrt(1.0 / (phi_star * phi_star) + 1.0 / v)
    mu_new = mu + phi_new * phi_new * delta_sum
    return Rating(mu_new * SCALE + DEFAULT_RATING, min(max_rd, phi_new * SCALE), sigma_new)


def decay(player: Rating, periods: int, max_rd: float = DEFAULT_RD) -> Rating:
    """RD after `periods` whole rating periods without a game (volatility unchanged)."""
    if periods <= 0:
        return player
    phi = player.rd / SCALE
    grown = math.sqrt(phi * phi + periods * player.volatility**2) * SCALE
    return Rating(player.rating, min(max_rd, grown), player.volatility)


def periods_between(last_rated_s: float | None, now_s: float, period_seconds: float) -> int:
    """Whole rating periods since a player's last rated game (none before their first)."""
    if last_rated_s is None or period_seconds <= 0 or now_s <= last_rated_s:
        return 0
    return int((now_s - last_rated_s) // period_seconds)


def rate_match(
    one: Rating, two: Rating, score_one: float, tau: float = DEFAULT_TAU, max_rd: float = DEFAULT_RD
) -> tuple[Rating, Rating]:
    """Both players' new ratings after one game between them (each from the other's rating
    before the game)."""
    return (
        rate(one, [Game(two, score_one)], tau, max_rd),
        rate(two, [Game(one, 1.0 - score_one)], tau, max_rd),
    )
