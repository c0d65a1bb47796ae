"""Game data shared by the servers: card and battle snapshots.

A battle snapshot is built by the game server from PostgreSQL (never from client input), travels
through Redis as part of the queue ticket, and is the only input the battle simulation needs
besides the battle's random seed. It is frozen so that a snapshot cannot change between queueing
and battle.
"""

from __future__ import annotations

import msgspec


class CardSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One copy of a card as it stood when the player queued."""

    card_id: int
    name: str
    cost: int
    attack: int
    health: int


class BattleSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the battle needs from one player: built server-side, immutable."""

    player_id: str
    name: str
    level: int
    rating: float
    deck: tuple[CardSnapshot, ...]
    pod_id: str
    artifacts: tuple[str, ...] = ()
    items: tuple[str, ...] = ()
    # The invite code of the party a Party-mode ticket belongs to ("" otherwise).
    party_code: str = ""
    # The card catalogue version the deck's numbers come from (0: not known, e.g. built by a
    # sender that predates the field); a match record refers to it instead of copying them.
    catalogue_version: int = 0


class SnapshotRef(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    rename={
        "catalogue_version": "v",
        "name": "n",
        "level": "l",
        "rating": "r",
        "deck": "d",
        "loadout": "o",
    },
):
    """A battle snapshot by reference, as a match record keeps it: the deck as card ids in
    snapshot order, whose numbers are those of `catalogue_version` (see
    `servers.game.persistence.resolve`). The player id is the participant row's. Stored as
    JSON with one-letter keys (v, n, l, r, d, o): two of them per recorded match, every byte
    counts."""

    catalogue_version: int
    name: str
    level: int
    rating: float
    deck: tuple[int, ...]
    loadout: tuple[str, ...] = ()  # for later: artifacts and items
