"""The pure battle simulation and the timeline it writes (the PRNG: test_battle_rng.py)."""

from __future__ import annotations

import hashlib
from collections import Counter

import msgspec
import pytest

from servers.common import timeline as ev
from servers.common.models import BattleSnapshot, CardSnapshot
from servers.common.timeline import decode_timeline, encode_timeline
from servers.game.battle.sim import (
    MAX_BOARD,
    MAX_MANA,
    STARTING_HEALTH,
    TURN_LIMIT,
    BattleOutcome,
    simulate,
)

# --- deck helpers (independent of the SQL catalogue) --------------------------------------------

# card_id: (name, cost, attack, health)
CARDS: dict[int, tuple[str, int, int, int]] = {
    1: ("Ember Sprite", 1, 2, 1),
    2: ("Moss Golem", 1, 1, 3),
    3: ("Goblin Cutpurse", 2, 3, 2),
    4: ("Shieldbearer", 2, 1, 5),
    5: ("Dire Wolf", 3, 4, 3),
    6: ("Stone Warden", 3, 2, 6),
    7: ("Ogre Brute", 4, 5, 4),
    8: ("Frost Drake", 5, 5, 6),
    9: ("Troll Berserker", 6, 7, 6),
    10: ("Ancient Wyrm", 8, 9, 9),
    11: ("Paper Wall", 0, 0, 1),
    12: ("Pebble", 1, 1, 1),
}


def card(card_id: int) -> CardSnapshot:
    name, cost, attack, health = CARDS[card_id]
    return CardSnapshot(card_id=card_id, name=name, cost=cost, attack=attack, health=health)


def deck(*ids: int, copies: int = 2) -> tuple[CardSnapshot, ...]:
    return tuple(card(i) for i in ids for _ in range(copies))


def player(pid: str, cards: tuple[CardSnapshot, ...], **extra: object) -> BattleSnapshot:
    fields: dict[str, object] = {"level": 3, "rating": 1000.0, "pod_id": "pod-a"}
    fields.update(extra)
    return BattleSnapshot(player_id=pid, name=pid.title(), deck=cards, **fields)


AGGRO = deck(1, 1, 3, 3, 5, 5, 7, 7, 12, 2)  # 20 cards, two copies of each listed entry
MIDRANGE = deck(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
CONTROL = deck(2, 4, 4, 6, 6, 8, 8, 9, 10, 10)

MATCHUPS = {
    "mid-mid": (MIDRANGE, MIDRANGE),
    "aggro-control": (AGGRO, CONTROL),
    "control-aggro": (CONTROL, AGGRO),
    "aggro-mid": (AGGRO, MIDRANGE),
}
SEEDS = range(50)


def battle(matchup: str, seed: int) -> BattleOutcome:
    d1, d2 = MATCHUPS[matchup]
    return simulate(player("alice", d1), player("bob", d2), seed)


# --- an independent replayer that checks every event against the rules --------------------------


class Unit(msgspec.Struct, kw_only=True):
    uid: int
    owner: str
    cost: int
    attack: int
    health: int


def expected_target(attacker: Unit, enemies: list[Unit]) -> int | None:
    candidates = [
        t
        for t in enemies
        if t.health <= attacker.attack and (t.attack < attacker.health or t.cost >= attacker.cost)
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda t: (-t.attack, t.uid)).uid


def expected_play(hand: list[int], mana: int) -> int | None:
    """Index in hand of the card the greedy rule plays, or None."""
    best = None
    for i, cid in enumerate(hand):
        cost = CARDS[cid][1]
        if cost <= mana and (best is None or (-cost, cid, i) < best):
            best = (-cost, cid, i)
    return None if best is None else best[2]


def replay(events: list[ev.Event], p1: BattleSnapshot, p2: BattleSnapshot) -> None:
    """Re-derive the whole battle from the timeline and assert every rule along the way."""
    assert isinstance(events[0], ev.BattleStart)
    assert isinstance(events[-1], ev.BattleEnd)
    assert sum(isinstance(e, ev.BattleStart | ev.BattleEnd) for e in events) == 2
    start = events[0]
    assert (start.p1, start.p2) == (p1.player_id, p2.player_id)
    assert (start.p1_name, start.p2_name) == (p1.name, p2.name)
    assert start.p1_health == start.p2_health == STARTING_HEALTH
    assert (start.p1_deck, start.p2_deck) == (len(p1.deck), len(p2.deck))

    pids = (p1.player_id, p2.player_id)
    health = {pid: STARTING_HEALTH for pid in pids}
    deck_left = {p1.player_id: len(p1.deck), p2.player_id: len(p2.deck)}
    drawn: dict[str, list[int]] = {pid: [] for pid in pids}
    hand: dict[str, list[int]] = {pid: [] for pid in pids}
    board: dict[str, list[Unit]] = {pid: [] for pid in pids}
    units: dict[int, Unit] = {}
    dead: set[int] = set()
    fatigue = {pid: 0 for pid in pids}
    own_turns = {pid: 0 for pid in pids}
    turn = 0
    active: str | None = None
    mana = 0
    phase = "opening"  # opening -> draw -> play -> attack
    ready: set[int] = set()
    attacked: set[int] = set()
    pending_damage: list[tuple[str, int | None, int]] = []

    def foe(pid: str) -> str:
        return pids[1] if pid == pids[0] else pids[0]

    def end_play_phase() -> None:
        # Greedy play only stops when the board is full or nothing is affordable.
        if phase == "play" and active is not None and len(board[active]) < MAX_BOARD:
            assert expected_play(hand[active], mana) is None, "stopped playing too early"

    def end_turn() -> None:
        # every ready unit that is still alive and has attack attacked before the turn passed
        for uid in ready:
            if uid not in dead and units[uid].attack > 0:
                assert uid in attacked, f"unit {uid} skipped its attack"

    for i, e in enumerate(events[1:-1], start=1):
        assert not pending_damage or isinstance(e, ev.Damage), f"event {i}: missing damage"
        match e:
            case ev.Draw(player=p, card_id=cid, hand=size):
                assert phase in ("opening", "draw") and (phase == "opening" or p == active)
                assert deck_left[p] > 0
                deck_left[p] -= 1
                hand[p].append(cid)
                drawn[p].append(cid)
                assert size == len(hand[p])
                if phase == "draw":
                    phase = "play"
            case ev.Fatigue(player=p, damage=dmg, health=h):
                assert phase in ("opening", "draw") and (phase == "opening" or p == active)
                assert deck_left[p] == 0
                fatigue[p] += 1
                assert dmg == fatigue[p]
                health[p] -= dmg
                assert h == health[p]
                if phase == "draw":
                    phase = "play"
            case ev.TurnStart(turn=t, player=p, mana=m):
                end_play_phase()
                end_turn()
                if phase == "opening":
                    assert [len(drawn[pid]) + fatigue[pid] for pid in pids] == [3, 4]
                assert t == turn + 1 and t <= TURN_LIMIT
                turn = t
                assert p == pids[(t - 1) % 2]
                active = p
                own_turns[p] += 1
                assert m == min(own_turns[p], MAX_MANA)
                mana = m
                phase = "draw"
                ready = {u.uid for u in board[p]}
                attacked = set()
            case ev.Play(player=p, card_id=cid, unit=uid, slot=slot, attack=a, health=h, mana=left):
                assert phase == "play" and p == active
                idx = expected_play(hand[p], mana)
                assert idx is not None and hand[p][idx] == cid, "greedy play rule broken"
                del hand[p][idx]
                _, cost, atk, hp = CARDS[cid]
                assert (a, h) == (atk, hp)
                mana -= cost
                assert left == mana >= 0, "mana exceeded"
                assert uid == len(units) + 1, "unit ids are handed out 1, 2, 3 ..."
                assert slot == len(board[p])
                unit = Unit(uid=uid, owner=p, cost=cost, attack=atk, health=hp)
                units[uid] = unit
                board[p].append(unit)
                assert len(board[p]) <= MAX_BOARD
            case ev.Attack(player=p, attacker=uid, target=target):
                end_play_phase()
                phase = "attack"
                assert p == active
                assert uid in units and uid not in dead, "a dead unit acted"
                unit = units[uid]
                assert unit.owner == p and unit in board[p]
                assert uid in ready, "summoning sickness ignored"
                assert uid not in attacked, "a unit attacked twice in one turn"
                assert unit.attack > 0
                # every ready unit attacks in board order: earlier ready units must be done
                for other in board[p]:
                    if other.uid == uid:
                        break
                    assert other.uid not in ready or other.uid in attacked
                attacked.add(uid)
                assert target == expected_target(unit, board[foe(p)]), "target rule broken"
                if target is None:
                    pending_damage = [(foe(p), None, unit.attack)]
                else:
                    tgt = units[target]
                    pending_damage = [(foe(p), target, unit.attack)]
                    if tgt.attack > 0:
                        pending_damage.append((p, uid, tgt.attack))
            case ev.Damage(player=p, target=target, amount=amount, health=h):
                assert pending_damage, "damage without a cause"
                assert (p, target, amount) == pending_damage.pop(0)
                if target is None:
                    health[p] -= amount
                    assert h == health[p]
                else:
                    assert target in units and target not in dead, "damage to a missing unit"
                    unit = units[target]
                    assert unit.owner == p and unit in board[p]
                    unit.health -= amount
                    assert h == unit.health
            case ev.Death(unit=uid, player=p):
                assert uid in units and uid not in dead
                unit = units[uid]
                assert unit.owner == p and unit.health <= 0
                board[p].remove(unit)
                dead.add(uid)
            case _:
                pytest.fail(f"unexpected event {e!r}")
        # no unit stays on the board at <= 0 health once its deaths are reported
        if not isinstance(e, ev.Damage | ev.Death | ev.Attack):
            assert all(u.health > 0 for b in board.values() for u in b)
    assert not pending_damage
    for b in board.values():
        assert all(u.health > 0 for u in b), "a dead unit was not removed"
    # cards are drawn from a permutation of the snapshot deck
    for snap in (p1, p2):
        remaining = Counter(c.card_id for c in snap.deck)
        remaining.subtract(drawn[snap.player_id])
        assert min(remaining.values()) >= 0

    end = events[-1]
    assert (end.p1_health, end.p2_health) == (health[pids[0]], health[pids[1]])
    assert end.turns == turn
    h1, h2 = health[pids[0]], health[pids[1]]
    if end.reason == "hero_defeated":
        assert h1 <= 0 or h2 <= 0
        if h1 <= 0 and h2 <= 0:
            assert end.winner_id is None
        else:
            assert end.winner_id == (pids[1] if h1 <= 0 else pids[0])
        # the battle stopped at the first lethal step: no event after the hero fell
        last = events[-2]
        assert isinstance(last, ev.Damage | ev.Fatigue)
    else:
        assert end.reason == "turn_limit"
        end_play_phase()
        end_turn()
        assert turn == TURN_LIMIT and h1 > 0 and h2 > 0
        assert end.winner_id == (None if h1 == h2 else pids[0] if h1 > h2 else pids[1])


# --- simulation tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("matchup", sorted(MATCHUPS))
def test_same_inputs_give_identical_bytes(matchup: str, seed: int) -> None:
    first = battle(matchup, seed)
    second = battle(matchup, seed)
    assert encode_timeline(first.events) == encode_timeline(second.events)
    assert msgspec.json.encode(first) == msgspec.json.encode(second)


@pytest.mark.parametrize("matchup", sorted(MATCHUPS))
def test_different_seeds_give_different_timelines(matchup: str) -> None:
    encoded = {encode_timeline(battle(matchup, seed).events) for seed in SEEDS}
    assert len(encoded) == len(SEEDS)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("matchup", sorted(MATCHUPS))
def test_timeline_is_well_formed(matchup: str, seed: int) -> None:
    d1, d2 = MATCHUPS[matchup]
    p1, p2 = player("alice", d1), player("bob", d2)
    outcome = simulate(p1, p2, seed)
    replay(outcome.events, p1, p2)
    end = outcome.events[-1]
    assert isinstance(end, ev.BattleEnd)
    assert (outcome.winner_id, outcome.turns, outcome.reason) == (
        end.winner_id,
        end.turns,
        end.reason,
    )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("matchup", sorted(MATCHUPS))
def test_winner_agrees_with_final_health(matchup: str, seed: int) -> None:
    outcome = battle(matchup, seed)
    end = outcome.events[-1]
    assert isinstance(end, ev.BattleEnd)
    assert outcome.reason == "hero_defeated"  # these decks always finish well before turn 60
    loser_health = end.p2_health if outcome.winner_id == "alice" else end.p1_health
    winner_health = end.p1_health if outcome.winner_id == "alice" else end.p2_health
    assert outcome.winner_id in ("alice", "bob")
    assert loser_health <= 0 < winner_health


@pytest.mark.parametrize("seed", [0, 1, 7, 42, 2**64 - 1])
@pytest.mark.parametrize("matchup", sorted(MATCHUPS))
def test_encode_decode_round_trip(matchup: str, seed: int) -> None:
    events = battle(matchup, seed).events
    data = encode_timeline(events)
    decoded = decode_timeline(data)
    assert decoded == events
    assert encode_timeline(decoded) == data
    assert decode_timeline(data.decode()) == events
    outcome = battle(matchup, seed)
    assert msgspec.json.decode(msgspec.json.encode(outcome), type=BattleOutcome) == outcome


def test_event_wire_format() -> None:
    data = encode_timeline(
        [ev.Attack(player="a", attacker=3, target=None), ev.Death(unit=3, player="b")]
    )
    assert data == (
        b'[{"type":"attack","player":"a","attacker":3,"target":null},'
        b'{"type":"death","unit":3,"player":"b"}]'
    )
    with pytest.raises(msgspec.ValidationError):
        decode_timeline(b'[{"type":"teleport","unit":1}]')
    with pytest.raises(TypeError):
        ev.Death(3, "b")  # type: ignore[misc]  # kw_only
    with pytest.raises(AttributeError):
        ev.Death(unit=3, player="b").unit = 4  # type: ignore[misc]  # frozen


@pytest.mark.parametrize("seed", range(10))
def test_swapping_nothing_changes_nothing(seed: int) -> None:
    """Equal inputs rebuilt from scratch, or differing only in fields the rules ignore, give the
    same bytes; the inputs themselves are left untouched."""
    p1, p2 = player("alice", MIDRANGE), player("bob", AGGRO)
    before = msgspec.json.encode([p1, p2])
    reference = encode_timeline(simulate(p1, p2, seed).events)
    assert msgspec.json.encode([p1, p2]) == before

    rebuilt = msgspec.json.decode(before, type=list[BattleSnapshot])
    assert rebuilt == [p1, p2] and rebuilt[0] is not p1
    assert encode_timeline(simulate(rebuilt[0], rebuilt[1], seed).events) == reference

    q1 = player("alice", MIDRANGE, level=50, rating=2500.5, pod_id="pod-z", artifacts=("x",))
    q2 = player("bob", AGGRO, level=1, rating=0.0, items=("potion",))
    assert encode_timeline(simulate(q1, q2, seed).events) == reference

    # seeds are taken mod 2**64, so the same stream is produced either way
    assert encode_timeline(simulate(p1, p2, seed + 2**64).events) == reference


def test_seat_matters_but_is_symmetric_in_format() -> None:
    """Swapping the seats is a different battle, but both are well-formed."""
    p1, p2 = player("alice", AGGRO), player("bob", CONTROL)
    forward = simulate(p1, p2, 5)
    backward = simulate(p2, p1, 5)
    replay(forward.events, p1, p2)
    replay(backward.events, p2, p1)
    assert encode_timeline(forward.events) != encode_timeline(backward.events)


def test_turn_limit_draw() -> None:
    walls = tuple(card(11) for _ in range(40))  # 0/1 walls: nobody can deal damage
    p1, p2 = player("alice", walls), player("bob", walls)
    outcome = simulate(p1, p2, 3)
    replay(outcome.events, p1, p2)
    assert (outcome.winner_id, outcome.reason, outcome.turns) == (None, "turn_limit", TURN_LIMIT)


def test_turn_limit_winner_by_health() -> None:
    # bob's 33 cards run out on his 30th turn (4 opening + 29 draws): one point of fatigue
    p1 = player("alice", tuple(card(11) for _ in range(40)))
    p2 = player("bob", tuple(card(11) for _ in range(33)))
    outcome = simulate(p1, p2, 3)
    replay(outcome.events, p1, p2)
    end = outcome.events[-1]
    assert isinstance(end, ev.BattleEnd)
    assert (outcome.winner_id, outcome.reason) == ("alice", "turn_limit")
    assert (end.p1_health, end.p2_health) == (30, 29)


def test_fatigue_can_decide_the_battle() -> None:
    p1 = player("alice", (card(11),))  # a single 0/1 wall: alice burns out
    p2 = player("bob", tuple(card(11) for _ in range(40)))
    outcome = simulate(p1, p2, 9)
    replay(outcome.events, p1, p2)
    assert (outcome.winner_id, outcome.reason) == ("bob", "hero_defeated")
    assert isinstance(outcome.events[-2], ev.Fatigue)


def test_board_fills_up_to_six() -> None:
    cheap = tuple(card(11) for _ in range(30))  # 0-cost walls: all playable at once
    p1, p2 = player("alice", cheap), player("bob", cheap)
    outcome = simulate(p1, p2, 1)
    replay(outcome.events, p1, p2)
    plays = [e for e in outcome.events if isinstance(e, ev.Play) and e.player == "alice"]
    assert max(e.slot for e in plays) == MAX_BOARD - 1
    assert len(plays) == MAX_BOARD  # walls never die, so the board stays full


def test_favourable_trade_rule() -> None:
    # a 2-cost 3/2 facing 1-cost 2/1s: killing one would trade down, so it goes face
    p1 = player("alice", tuple(card(3) for _ in range(20)))
    p2 = player("bob", tuple(card(1) for _ in range(20)))
    outcome = simulate(p1, p2, 0)
    replay(outcome.events, p1, p2)  # the replayer re-derives every target choice


@pytest.mark.parametrize(
    ("label", "mutate"),
    [
        ("empty deck", lambda d: ()),
        ("zero health", lambda d: (*d[:-1], msgspec.structs.replace(d[-1], health=0))),
        ("negative health", lambda d: (msgspec.structs.replace(d[0], health=-3), *d[1:])),
        ("negative attack", lambda d: (msgspec.structs.replace(d[0], attack=-1), *d[1:])),
        ("negative cost", lambda d: (msgspec.structs.replace(d[0], cost=-1), *d[1:])),
        ("cost above 10", lambda d: (msgspec.structs.replace(d[0], cost=11), *d[1:])),
        ("bool health", lambda d: (msgspec.structs.replace(d[0], health=True), *d[1:])),
        ("float attack", lambda d: (msgspec.structs.replace(d[0], attack=2.0), *d[1:])),
        ("not a card", lambda d: (*d[:-1], "Ember Sprite")),
    ],
)
@pytest.mark.parametrize("seat", [0, 1])
def test_invalid_decks_raise(label: str, mutate, seat: int) -> None:
    decks = [MIDRANGE, MIDRANGE]
    decks[seat] = mutate(MIDRANGE)
    with pytest.raises(ValueError):
        simulate(player("alice", decks[0]), player("bob", decks[1]), 1)


def test_invalid_players_and_seed_raise() -> None:
    with pytest.raises(ValueError):
        simulate(player("alice", MIDRANGE), player("alice", AGGRO), 1)
    with pytest.raises(ValueError):
        simulate(player("alice", MIDRANGE), player("bob", AGGRO), "1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        simulate(player("alice", MIDRANGE), "bob", 1)  # type: ignore[arg-type]


def test_golden_battle() -> None:
    """Pins the rules + format: update deliberately (and tell the client team) if it changes."""
    outcome = battle("mid-mid", 42)
    digest = hashlib.sha256(encode_timeline(outcome.events)).hexdigest()
    assert (outcome.winner_id, outcome.turns, outcome.reason, len(outcome.events)) == GOLDEN[:4]
    assert digest == GOLDEN[4]


GOLDEN = (
    "bob",
    26,
    "hero_defeated",
    225,
    "eb9a86f98263c13b371da4539848ed8d41c2ecef72ffb65edac7e03b985eb3a6",
)


def test_midrange_against_control_ends_within_the_turn_limit() -> None:
    """Every battle ends, within the turn limit, with a winner from the two or a draw. (How fast
    the simulation runs is measured by `cardgame bench`, not asserted here.)"""
    p1, p2 = player("alice", MIDRANGE), player("bob", CONTROL)
    for seed in range(30):
        outcome = simulate(p1, p2, seed)
        assert 1 <= outcome.turns <= TURN_LIMIT
        assert outcome.winner_id in ("alice", "bob", None)
