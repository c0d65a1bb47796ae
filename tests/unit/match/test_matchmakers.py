"""Pure logic of issue 3: Glicko-2, Ranked and Party pairing, AI decks, timeline packing."""

from __future__ import annotations

import random
from collections import Counter

import msgspec
import pytest

from servers.common import glicko2
from servers.common import protocol as p
from servers.common.decks import DECK_SIZE, MAX_COPIES
from servers.game.pve import ai_deck
from servers.match.matchmakers.party import pair_party
from servers.match.matchmakers.ranked import Entry, Window, best_possible_mean_diff, pair_by_rating


# ------------------------------------------------------------------ Glicko-2
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


# ------------------------------------------------------------------ Ranked pairing
WINDOW = Window(start=100, growth=10, maximum=400)
NOW = 1_000_000


def entry(player: str, rating: float, waited_s: float = 0.0) -> Entry[str]:
    return Entry(player, rating, NOW - int(waited_s * 1000), player)


@pytest.mark.parametrize(
    ("entries", "pairs", "unpaired"),
    [
        # The closest opponent, not the first one in the queue.
        ([entry("a", 1500, 3), entry("b", 1590, 2), entry("c", 1510, 1)], [("a", "c")], ["b"]),
        # Outside the window: nobody.
        ([entry("a", 1500), entry("b", 1700)], [], ["a", "b"]),
        # ... until both have waited long enough (100 + 10/s * 10 s = 200).
        ([entry("a", 1500, 10), entry("b", 1700, 10)], [("a", "b")], []),
        # Both must accept: a long wait on one side is not enough.
        ([entry("a", 1500, 30), entry("b", 1700, 0)], [], ["a", "b"]),
        # The longest-waiting player chooses first, even when that splits a closer pair.
        ([entry("b", 1550, 5), entry("a", 1500, 1), entry("c", 1560, 0)], [("b", "c")], ["a"]),
        # The window never grows past the maximum (400).
        ([entry("a", 1000, 3600), entry("b", 1450, 3600)], [], ["a", "b"]),
        # The same player twice (can not happen in a sorted set, but never pair them).
        ([entry("a", 1500, 2), entry("a", 1500, 1)], [], ["a", "a"]),
        # Ties in difference: the longer-waiting opponent.
        ([entry("a", 1500, 9), entry("b", 1550, 1), entry("c", 1450, 2)], [("a", "c")], ["b"]),
    ],
)
def test_ranked_pairing_rules(
    entries: list[Entry[str]], pairs: list[tuple[str, str]], unpaired: list[str]
) -> None:
    got_pairs, got_unpaired = pair_by_rating(entries, NOW, WINDOW)
    assert got_pairs == pairs
    assert got_unpaired == unpaired


@pytest.mark.parametrize("seed", range(5))
def test_ranked_pairing_invariants_on_a_population(seed: int) -> None:
    rng = random.Random(seed)
    entries = [entry(str(i), rng.gauss(1500, 300), rng.uniform(0, 60)) for i in range(500)]
    pairs, unpaired = pair_by_rating(entries, NOW, WINDOW)
    seen = Counter(x for pair in pairs for x in pair) + Counter(unpaired)
    assert set(seen) == {e.player_id for e in entries} and set(seen.values()) == {1}
    by_id = {e.player_id: e for e in entries}
    for one, two in pairs:
        a, b = by_id[one], by_id[two]
        assert one != two
        diff = abs(a.rating - b.rating)
        assert diff <= WINDOW.width((NOW - a.enqueued_ms) / 1000) + 1e-9
        assert diff <= WINDOW.width((NOW - b.enqueued_ms) / 1000) + 1e-9
        assert a.enqueued_ms <= b.enqueued_ms  # the chooser waited longer
    # No two unpaired players could have met.
    for i, x in enumerate(unpaired):
        for y in unpaired[i + 1 :]:
            a, b = by_id[x], by_id[y]
            diff = abs(a.rating - b.rating)
            assert diff > min(
                WINDOW.width((NOW - a.enqueued_ms) / 1000),
                WINDOW.width((NOW - b.enqueued_ms) / 1000),
            )


@pytest.mark.parametrize(
    ("ratings", "expected"),
    [
        ([], 0.0),
        ([1500, 1600], 100.0),
        ([1000, 1010, 1500, 1530], 20.0),
        ([1530, 1000, 1500, 1010], 20.0),
    ],
)
def test_best_possible_pairing(ratings: list[float], expected: float) -> None:
    assert best_possible_mean_diff(ratings) == expected


# ------------------------------------------------------------------ Party pairing
@pytest.mark.parametrize(
    ("queue", "pairs", "unpaired"),
    [
        ([("a", "P1"), ("x", "P2"), ("b", "P1")], [("a", "b")], ["x"]),
        ([("a", "P1"), ("b", "")], [], ["a", "b"]),
        ([("a", "P1"), ("a", "P1")], [], ["a", "a"]),
        ([("a", "P1"), ("c", "P2"), ("b", "P1"), ("d", "P2")], [("a", "b"), ("c", "d")], []),
    ],
)
def test_party_pairing(
    queue: list[tuple[str, str]], pairs: list[tuple[str, str]], unpaired: list[str]
) -> None:
    got_pairs, got_unpaired = pair_party(queue, lambda c: c[1], lambda c: c[0])
    assert [(a[0], b[0]) for a, b in got_pairs] == pairs
    assert sorted(c[0] for c in got_unpaired) == sorted(unpaired)


# ------------------------------------------------------------------ PvE decks
CATALOGUE = [
    (i, f"c{i}", 1 + i % 8, 1 + i % 5, 1 + i % 7, 2 if i <= 15 else 0) for i in range(1, 41)
]


@pytest.mark.parametrize("difficulty", ["easy", "normal", "hard"])
def test_ai_decks_are_legal_and_fixed(difficulty: str) -> None:
    deck = ai_deck(CATALOGUE, difficulty)
    assert len(deck) == DECK_SIZE
    assert max(Counter(c[0] for c in deck).values()) <= MAX_COPIES
    assert deck == ai_deck(list(reversed(CATALOGUE)), difficulty)


def test_hard_ai_has_better_cards_than_easy() -> None:
    def value(deck: list[tuple[int, str, int, int, int, int]]) -> int:
        return sum(c[3] + c[4] - 2 * c[2] for c in deck)

    assert value(ai_deck(CATALOGUE, "hard")) > value(ai_deck(CATALOGUE, "easy"))


# ------------------------------------------------------------------ timeline compression
def test_timeline_gzip_round_trips_and_is_deterministic() -> None:
    timeline = b'[{"type":"turn_start","turn":1,"player":"1","mana":1}]' * 100
    packed = p.gzip_timeline(timeline)
    assert packed == p.gzip_timeline(timeline)
    message = p.BattleResultMessage(
        match_id="m",
        mode="normal",
        seed=1,
        winner_id=None,
        outcome="draw",
        opponent_id="2",
        turns=1,
        timeline=msgspec.Raw(b"null"),
        timeline_gzip=packed,
    )
    decoded = p.decode_server(p.encode(message))
    assert isinstance(decoded, p.BattleResultMessage)
    assert p.timeline_bytes(decoded) == timeline
    assert len(packed) < len(timeline) / 5
