"""What the simulated players send: skill-shaped decks and the bad inputs. Pure, no Locust import
(importing Locust monkey-patches the process for gevent), so the tests can use it directly."""

from __future__ import annotations

import random

from servers.common import protocol as p
from servers.common.decks import DECK_SIZE, MAX_COPIES


def skill_deck(owned: list[p.OwnedCard], skill: float, rng: random.Random) -> list[p.DeckCard]:
    """A legal deck: each slot takes the best remaining card with probability `skill`."""
    pool = [card for card in owned for _ in range(min(card.count, MAX_COPIES))]
    pool.sort(key=lambda c: (c.attack + c.health) / (c.cost + 1), reverse=True)
    chosen: dict[int, int] = {}
    for _ in range(min(DECK_SIZE, len(pool))):
        card = pool.pop(0 if rng.random() < skill else rng.randrange(len(pool)))
        chosen[card.card_id] = chosen.get(card.card_id, 0) + 1
    return [p.DeckCard(card_id=c, count=n) for c, n in sorted(chosen.items())]


# (name, frame, expected error code). Each must be rejected with that code, socket kept open.
BAD_FRAMES: list[tuple[str, str | bytes, str]] = [
    ("malformed JSON", "{not json", "MALFORMED_JSON"),
    ("binary garbage", b"\xff\xfe\x00garbage", "MALFORMED_JSON"),
    ("not an object", "[1, 2, 3]", "INVALID_MESSAGE"),
    ("unknown type", '{"type": "give_me_gold", "id": "x"}', "UNKNOWN_MESSAGE"),
    ("wrong field type", '{"type": "enqueue", "mode": 5, "id": "x"}', "INVALID_MESSAGE"),
    ("unknown mode", '{"type": "enqueue", "mode": "no-such-mode", "id": "x"}', "UNKNOWN_MODE"),
    ("dequeue while idle", '{"type": "dequeue", "id": "x"}', "NOT_QUEUED"),
    ("oversized frame", '{"type": "ping", "pad": "' + "x" * 20_000 + '"}', "MESSAGE_TOO_LARGE"),
    (
        "foreign deck",
        '{"type": "set_active_deck", "deck_id": 2000000000, "id": "x"}',
        "DECK_NOT_FOUND",
    ),
]
# Codes with which a server may refuse traffic that is over its rate limits.
RATE_LIMIT_CODES = {"RATE_LIMITED", "TOO_MANY_REQUESTS"}
BURST = 50
