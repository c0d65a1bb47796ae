"""Deck rules: pure functions shared by the auth server (starter deck) and the game lobby."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

DECK_SIZE = 20
MAX_COPIES = 2


def deck_problems(cards: Mapping[int, int], owned: Mapping[int, int]) -> list[str]:
    """Every rule the deck breaks (empty when legal): size, copies per card, ownership."""
    problems = []
    total = sum(cards.values())
    if total != DECK_SIZE:
        problems.append(f"a deck holds exactly {DECK_SIZE} cards, this one {total}")
    for card_id, count in sorted(cards.items()):
        if count < 1:
            problems.append(f"card {card_id}: count must be at least 1")
        elif count > MAX_COPIES:
            problems.append(f"card {card_id}: at most {MAX_COPIES} copies, not {count}")
        if count > owned.get(card_id, 0):
            problems.append(f"card {card_id}: owns {owned.get(card_id, 0)}, deck uses {count}")
    return problems


def starter_deck(starters: Sequence[tuple[int, int, int]]) -> dict[int, int]:
    """A legal deck from (card_id, cost, copies owned): cheapest first, for a smooth curve."""
    deck: dict[int, int] = {}
    remaining = DECK_SIZE
    for card_id, _cost, copies in sorted(starters, key=lambda c: (c[1], c[0])):
        take = min(copies, MAX_COPIES, remaining)
        if take > 0:
            deck[card_id] = take
            remaining -= take
        if remaining == 0:
            return deck
    raise ValueError(f"the starter cards make only {DECK_SIZE - remaining} of {DECK_SIZE} cards")
