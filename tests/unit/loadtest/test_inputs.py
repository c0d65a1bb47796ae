"""The Locust users' inputs: skill-shaped decks and the bad frames, without a stack."""

from __future__ import annotations

import random

from loadtest.inputs import BAD_FRAMES, skill_deck
from servers.common import protocol as p
from servers.common.decks import DECK_SIZE, deck_problems


def test_skill_deck_is_legal_and_skill_picks_stronger_cards() -> None:
    owned = [
        p.OwnedCard(
            card_id=i,
            name=f"c{i}",
            cost=1 + i % 7,
            attack=i % 5,
            health=1 + i % 4,
            rarity="common",
            count=2,
        )
        for i in range(1, 31)
    ]
    have = {c.card_id: c.count for c in owned}

    def value(deck: list[p.DeckCard]) -> float:
        by_id = {c.card_id: c for c in owned}
        return sum(
            n.count
            * (by_id[n.card_id].attack + by_id[n.card_id].health)
            / (by_id[n.card_id].cost + 1)
            for n in deck
        )

    for skill in (0.0, 0.5, 1.0):
        deck = skill_deck(owned, skill, random.Random(1))
        assert sum(c.count for c in deck) == DECK_SIZE
        assert deck_problems({c.card_id: c.count for c in deck}, have) == []
    assert value(skill_deck(owned, 1.0, random.Random(1))) > value(
        skill_deck(owned, 0.0, random.Random(1))
    )


def test_bad_frames_are_distinct_cases() -> None:
    names = [name for name, _, _ in BAD_FRAMES]
    assert len(names) == len(set(names))
