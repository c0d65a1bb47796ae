"""The matchmakers' pure pairing: first come first paired (Normal), by rating within a window
that widens with waiting time (Ranked), by party code (Party)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from servers.match.matchmakers.normal import pair_fifo
from servers.match.matchmakers.party import pair_party
from servers.match.matchmakers.ranked import Entry, Window, best_possible_mean_diff, pair_by_rating

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


# ------------------------------------------------------------------ Normal (FIFO) pairing
@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 10])
def test_pair_fifo(n: int) -> None:
    pairs, leftover = pair_fifo(list(range(n)))
    assert pairs == [(i, i + 1) for i in range(0, n - 1, 2)]
    assert leftover == ([n - 1] if n % 2 else [])
