"""PvE: the AI decks, legal and fixed per difficulty."""

from __future__ import annotations

from collections import Counter

import pytest

from servers.common.decks import DECK_SIZE, MAX_COPIES
from servers.game.pve import ai_deck

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
