"""Deck rules and the starter deck."""

from __future__ import annotations

import pytest

from servers.common.decks import DECK_SIZE, deck_problems, starter_deck

OWNED = {card: 2 for card in range(1, 16)}


@pytest.mark.parametrize(
    ("deck", "problem"),
    [
        ({card: 2 for card in range(1, 11)}, None),
        ({card: 2 for card in range(1, 10)}, "exactly 20"),
        ({1: 3, **{card: 2 for card in range(2, 10)}, 10: 1}, "at most 2"),
        ({99: 2, **{card: 2 for card in range(1, 10)}}, "owns 0"),
        ({1: 0, **{card: 2 for card in range(2, 12)}}, "at least 1"),
    ],
)
def test_deck_rules(deck: dict[int, int], problem: str | None) -> None:
    problems = deck_problems(deck, OWNED)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_starter_deck_is_legal_and_cheapest_first() -> None:
    costs = [5, 1, 2, 3, 4] * 3
    starters = [(card, cost, 2) for card, cost in zip(range(1, 16), costs, strict=True)]
    deck = starter_deck(starters)
    assert sum(deck.values()) == DECK_SIZE
    assert deck_problems(deck, {c: n for c, _, n in starters}) == []
    # Ten cards, cheapest first, ties by id: all cost 1-3 and the first cost-4 card.
    assert deck == {card: 2 for card in (2, 7, 12, 3, 8, 13, 4, 9, 14, 5)}


def test_starter_deck_needs_enough_cards() -> None:
    with pytest.raises(ValueError):
        starter_deck([(1, 1, 2)])
