"""The pure battle simulation: two snapshots and a seed in, a timeline out.

No I/O, no clocks, no global mutable state, no ``random``, no floats, no dict iteration: the same
inputs always give the same timeline, byte for byte (see ``encode_timeline``), so a client can
replay it, and a Unity client could even re-simulate it. These rules are battle engine version 1
(`engines.py`): a change to them is a new engine, so that recorded matches replay as played.

Rules
-----
* Each hero starts with 30 health. Seeding: ``master = Rng(seed)``; ``s1 = master.next_u64()``,
  ``s2 = master.next_u64()``; ``Rng(s1).shuffle(deck of p1)``, ``Rng(s2).shuffle(deck of p2)``
  (decks in snapshot order before shuffling). Cards are drawn from index 0 of the shuffled deck.
* Opening hands: player 1 draws 3 cards, then player 2 draws 4.
* Turns alternate starting with player 1; turn numbers count both players' turns (1, 2, 3 ...).
  On a player's n-th turn their mana is ``min(n, 10)``; it does not carry over.
* Turn order: ``turn_start``; draw one card (empty deck: ``fatigue`` of 1, then 2, 3 ... for that
  player); play cards greedily; then attack.
* Greedy play: while the board has fewer than 6 units, play the affordable card with the highest
  cost, ties broken by lowest ``card_id`` then earliest in hand. Hands have no size limit.
* Attack: every unit that was on the board when the turn started (no summoning sickness) and has
  attack > 0 attacks once, in board order (left to right). Target choice: among the enemy units
  it can kill (health <= its attack) where either it survives (their attack < its health) or the
  trade is favourable (their cost >= its cost), the one with the highest attack, ties by lowest
  unit id; if there is none, the enemy hero. Unit combat damage is simultaneous; deaths are
  reported defender first, then attacker.
* The battle ends as soon as a hero is at <= 0 health after a step (a fatigue draw or an attack):
  the other player wins, or it is a draw if both are. After 60 turns the hero with more health
  wins (equal: a draw) with reason ``turn_limit``.
"""

from __future__ import annotations

from typing import Final

import msgspec

from servers.common.models import BattleSnapshot, CardSnapshot
from servers.common.timeline import (
    Attack,
    BattleEnd,
    BattleStart,
    Damage,
    Death,
    Draw,
    EndReason,
    Event,
    Fatigue,
    Play,
    TurnStart,
)
from servers.game.battle.rng import Rng

__all__ = [
    "BattleOutcome",
    "MAX_BOARD",
    "MAX_MANA",
    "OPENING_HAND",
    "STARTING_HEALTH",
    "TURN_LIMIT",
    "simulate",
]

STARTING_HEALTH = 30
MAX_BOARD = 6
MAX_MANA = 10
MAX_COST = 10
TURN_LIMIT = 60
OPENING_HAND = (3, 4)

HERO_DEFEATED: Final = "hero_defeated"
TURN_LIMIT_REASON: Final = "turn_limit"


class BattleOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """The result of one battle. ``winner_id`` is None for a draw."""

    winner_id: str | None
    turns: int
    reason: EndReason
    events: list[Event]


# --- internal state ---------------------------------------------------------------------------


class _Unit:
    __slots__ = ("uid", "cost", "attack", "health")

    def __init__(self, uid: int, card: CardSnapshot) -> None:
        self.uid = uid
        self.cost = card.cost
        self.attack = card.attack
        self.health = card.health


class _Side:
    __slots__ = ("pid", "name", "health", "deck", "drawn", "hand", "board", "fatigue", "turns")

    def __init__(self, snap: BattleSnapshot, rng: Rng) -> None:
        self.pid = snap.player_id
        self.name = snap.name
        self.health = STARTING_HEALTH
        deck = list(snap.deck)
        rng.shuffle(deck)
        self.deck = deck
        self.drawn = 0
        self.hand: list[CardSnapshot] = []
        self.board: list[_Unit] = []
        self.fatigue = 0
        self.turns = 0


class _End(Exception):
    """Raised internally when a hero falls; carries nothing, the state says who won."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(snap: object, label: str) -> BattleSnapshot:
    if not isinstance(snap, BattleSnapshot):
        raise ValueError(f"{label}: expected a BattleSnapshot, got {type(snap).__name__}")
    if not isinstance(snap.player_id, str) or not snap.player_id:
        raise ValueError(f"{label}: player_id must be a non-empty string")
    if not isinstance(snap.name, str):
        raise ValueError(f"{label}: name must be a string")
    deck = snap.deck
    if not isinstance(deck, tuple | list) or not deck:
        raise ValueError(f"{label}: the deck is empty")
    for i, card in enumerate(deck):
        if not isinstance(card, CardSnapshot):
            raise ValueError(f"{label}: deck[{i}] is not a CardSnapshot")
        if not _is_int(card.card_id):
            raise ValueError(f"{label}: deck[{i}] has a non-int card_id")
        if not _is_int(card.cost) or not 0 <= card.cost <= MAX_COST:
            raise ValueError(f"{label}: card {card.card_id} has cost {card.cost!r}, not 0..10")
        if not _is_int(card.attack) or card.attack < 0:
            raise ValueError(f"{label}: card {card.card_id} has attack {card.attack!r} < 0")
        if not _is_int(card.health) or card.health <= 0:
            raise ValueError(f"{label}: card {card.card_id} has health {card.health!r} <= 0")
    return snap


def simulate(p1: BattleSnapshot, p2: BattleSnapshot, seed: int) -> BattleOutcome:
    """Play one battle; ``p1`` moves first. Raises ValueError for an illegal input."""
    _validate(p1, "p1")
    _validate(p2, "p2")
    if p1.player_id == p2.player_id:
        raise ValueError("both players have the same player_id")
    if not _is_int(seed):
        raise ValueError("seed must be an int")
    return _Battle(p1, p2, seed).run()


class _Battle:
    __slots__ = ("a", "b", "events", "emit", "next_uid")

    def __init__(self, p1: BattleSnapshot, p2: BattleSnapshot, seed: int) -> None:
        master = Rng(seed)
        s1, s2 = master.next_u64(), master.next_u64()
        self.a = _Side(p1, Rng(s1))
        self.b = _Side(p2, Rng(s2))
        self.events: list[Event] = []
        self.emit = self.events.append
        self.next_uid = 1

    def run(self) -> BattleOutcome:
        a, b = self.a, self.b
        self.emit(
            BattleStart(
                p1=a.pid,
                p1_name=a.name,
                p1_health=a.health,
                p1_deck=len(a.deck),
                p2=b.pid,
                p2_name=b.name,
                p2_health=b.health,
                p2_deck=len(b.deck),
            )
        )
        turn = 0
        reason: EndReason
        try:
            for side, count in ((a, OPENING_HAND[0]), (b, OPENING_HAND[1])):
                for _ in range(count):
                    self._draw(side)
            while turn < TURN_LIMIT:
                turn += 1
                if turn % 2 == 1:
                    self._turn(turn, a, b)
                else:
                    self._turn(turn, b, a)
        except _End:
            if a.health <= 0 and b.health <= 0:
                winner = None
            else:
                winner = b.pid if a.health <= 0 else a.pid
            reason = HERO_DEFEATED
        else:
            if a.health == b.health:
                winner = None
            else:
                winner = a.pid if a.health > b.health else b.pid
            reason = TURN_LIMIT_REASON
        self.emit(
            BattleEnd(
                winner_id=winner, reason=reason, p1_health=a.health, p2_health=b.health, turns=turn
            )
        )
        return BattleOutcome(winner_id=winner, turns=turn, reason=reason, events=self.events)

    def _check(self) -> None:
        if self.a.health <= 0 or self.b.health <= 0:
            raise _End

    def _draw(self, side: _Side) -> None:
        if side.drawn < len(side.deck):
            card = side.deck[side.drawn]
            side.drawn += 1
            side.hand.append(card)
            self.emit(Draw(player=side.pid, card_id=card.card_id, hand=len(side.hand)))
        else:
            side.fatigue += 1
            side.health -= side.fatigue
            self.emit(Fatigue(player=side.pid, damage=side.fatigue, health=side.health))
            self._check()

    def _turn(self, turn: int, me: _Side, foe: _Side) -> None:
        emit = self.emit
        me.turns += 1
        mana = min(me.turns, MAX_MANA)
        emit(TurnStart(turn=turn, player=me.pid, mana=mana))
        ready = list(me.board)  # units that may attack this turn: no summoning sickness
        self._draw(me)

        # Greedy play: highest affordable cost, then lowest card_id, then earliest in hand.
        hand = me.hand
        board = me.board
        while len(board) < MAX_BOARD:
            best_i = -1
            best: CardSnapshot | None = None
            for i, card in enumerate(hand):
                if card.cost > mana:
                    continue
                if (
                    best is None
                    or card.cost > best.cost
                    or (card.cost == best.cost and card.card_id < best.card_id)
                ):
                    best_i, best = i, card
            if best is None:
                break
            del hand[best_i]
            mana -= best.cost
            unit = _Unit(self.next_uid, best)
            self.next_uid += 1
            emit(
                Play(
                    player=me.pid,
                    card_id=best.card_id,
                    unit=unit.uid,
                    slot=len(board),
                    attack=unit.attack,
                    health=unit.health,
                    mana=mana,
                )
            )
            board.append(unit)

        # Attacks, left to right.
        for unit in ready:
            if unit.health <= 0 or unit.attack <= 0:
                continue
            target = _choose_target(unit, foe.board)
            if target is None:
                emit(Attack(player=me.pid, attacker=unit.uid, target=None))
                foe.health -= unit.attack
                emit(Damage(player=foe.pid, target=None, amount=unit.attack, health=foe.health))
                self._check()
                continue
            emit(Attack(player=me.pid, attacker=unit.uid, target=target.uid))
            target.health -= unit.attack
            emit(
                Damage(player=foe.pid, target=target.uid, amount=unit.attack, health=target.health)
            )
            if target.attack > 0:
                unit.health -= target.attack
                emit(
                    Damage(player=me.pid, target=unit.uid, amount=target.attack, health=unit.health)
                )
            if target.health <= 0:
                foe.board.remove(target)
                emit(Death(unit=target.uid, player=foe.pid))
            if unit.health <= 0:
                board.remove(unit)
                emit(Death(unit=unit.uid, player=me.pid))


def _choose_target(unit: _Unit, enemies: list[_Unit]) -> _Unit | None:
    """The enemy unit to attack, or None for the enemy hero (see the module docstring)."""
    best: _Unit | None = None
    for t in enemies:
        if t.health > unit.attack:
            continue  # cannot kill it
        if t.attack >= unit.health and t.cost < unit.cost:
            continue  # would die in an unfavourable trade
        if best is None or t.attack > best.attack or (t.attack == best.attack and t.uid < best.uid):
            best = t
    return best
