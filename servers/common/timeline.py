"""Battle timelines: the public replay format (part of the client protocol) and its codec.

A timeline is a JSON array of objects; each object's ``"type"`` names its event (snake_case) and
its other fields are listed below in the order they are encoded. Conventions:

* players are named by their ``player_id`` (str);
* units are named by small ints, unique within one battle, handed out 1, 2, 3 ... in play order;
* a ``target`` of ``null`` means the hero of the player in ``player`` (damage) or of the
  defending player (attack);
* health values are reported as they are, so a value can be zero or negative after lethal damage;
* board slots are 0-based; a unit is played at the right end (slot = board size before the play)
  and when a unit dies the units to its right shift one slot left.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec

__all__ = [
    "Attack",
    "BattleEnd",
    "BattleStart",
    "Damage",
    "Death",
    "Draw",
    "Event",
    "Fatigue",
    "Play",
    "Timeline",
    "TurnStart",
    "decode_timeline",
    "encode_timeline",
]


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base class: every event is encoded as an object with a ``"type"`` tag."""


class BattleStart(_Event, tag="battle_start", frozen=True, kw_only=True):
    """First event. ``p1`` moves first; ``*_health`` is the starting hero health."""

    p1: str
    p1_name: str
    p1_health: int
    p1_deck: int
    p2: str
    p2_name: str
    p2_health: int
    p2_deck: int


class TurnStart(_Event, tag="turn_start", frozen=True, kw_only=True):
    """``turn`` counts both players' turns from 1; ``mana`` is the active player's mana."""

    turn: int
    player: str
    mana: int


class Draw(_Event, tag="draw", frozen=True, kw_only=True):
    """``player`` drew ``card_id``; ``hand`` is the hand size after the draw."""

    player: str
    card_id: int
    hand: int


class Fatigue(_Event, tag="fatigue", frozen=True, kw_only=True):
    """``player`` tried to draw from an empty deck: its hero takes ``damage`` (1, 2, 3 ...)."""

    player: str
    damage: int
    health: int


class Play(_Event, tag="play", frozen=True, kw_only=True):
    """``player`` played ``card_id`` as unit ``unit`` into board ``slot``; ``mana`` is left over."""

    player: str
    card_id: int
    unit: int
    slot: int
    attack: int
    health: int
    mana: int


class Attack(_Event, tag="attack", frozen=True, kw_only=True):
    """Unit ``attacker`` of ``player`` attacks unit ``target`` (``null``: the enemy hero)."""

    player: str
    attacker: int
    target: int | None


class Damage(_Event, tag="damage", frozen=True, kw_only=True):
    """Unit ``target`` of ``player`` (``null``: that player's hero) took ``amount``."""

    player: str
    target: int | None
    amount: int
    health: int


class Death(_Event, tag="death", frozen=True, kw_only=True):
    """Unit ``unit`` of ``player`` died and left the board."""

    unit: int
    player: str


EndReason = Literal["hero_defeated", "turn_limit"]


class BattleEnd(_Event, tag="battle_end", frozen=True, kw_only=True):
    """Last event. ``winner_id`` is null for a draw; ``turns`` is the number of turns started."""

    winner_id: str | None
    reason: EndReason
    p1_health: int
    p2_health: int
    turns: int


Event = BattleStart | TurnStart | Draw | Fatigue | Play | Attack | Damage | Death | BattleEnd
Timeline = list[Event]


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(list[Event])


def encode_timeline(events: Sequence[Event]) -> bytes:
    """Compact JSON; fields in declaration order, so equal timelines give equal bytes."""
    return _ENCODER.encode(events)


def decode_timeline(data: bytes | str) -> list[Event]:
    """Parse and validate a timeline produced by ``encode_timeline``."""
    return _DECODER.decode(data)
