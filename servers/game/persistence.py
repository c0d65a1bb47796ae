"""Recording finished battles in PostgreSQL, exactly once per match id.

A match is recorded by its inputs: seed, engine version, each participant's snapshot by
reference to a catalogue version (`SnapshotRef`), and the outcome. Its timeline is produced
again, byte for byte, by the engine version that played it (`timeline`); a match recorded
before this format keeps its stored timeline, which is served as it is.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import msgspec

from servers.common import db, glicko2
from servers.common import protocol as p
from servers.common.config import RatingSettings
from servers.common.keys import GameMode
from servers.common.models import BattleSnapshot, CardSnapshot, SnapshotRef
from servers.common.timeline import encode_timeline
from servers.game.battle import engines

EXPERIENCE = {"win": 30, "draw": 15, "loss": 10}


def result_of(player_id: str, winner_id: str | None) -> str:
    if winner_id is None:
        return "draw"
    return "win" if winner_id == player_id else "loss"


@dataclass(frozen=True)
class ProfileAfter:
    """A player's level and rating once a match was recorded."""

    level: int
    rating: float


# What record_match returns when it recorded the match: each player's profile after it.
Recorded = dict[str, ProfileAfter]


@dataclass(frozen=True)
class RatingChange:
    before: glicko2.Rating  # after the inactivity growth of RD, as the update used it
    after: glicko2.Rating


def score_of(player_id: str, winner_id: str | None) -> float:
    return 0.5 if winner_id is None else (1.0 if winner_id == player_id else 0.0)


async def _rate(
    conn: db.Connection,
    request: p.BattleRequest,
    winner_id: str | None,
    rating: RatingSettings,
) -> dict[str, RatingChange]:
    """Glicko-2 update of both players of a Ranked match (inside the caller's transaction; the
    caller's insert writes the new ratings).

    The profiles are locked in id order (no deadlock between two matches of the same players);
    each player's RD first grows for the rating periods they sat out, then the match is one
    rating period of one game for both."""
    one, two = request.player1.player_id, request.player2.player_id
    rows = await conn.fetch(
        "SELECT player_id, rating, rating_deviation, volatility,"
        " extract(epoch FROM rated_at)::float8 AS rated_s, extract(epoch FROM now())::float8"
        " AS now_s FROM player_profiles WHERE player_id = ANY($1::bigint[])"
        " ORDER BY player_id FOR UPDATE",
        sorted({int(one), int(two)}),
    )
    before: dict[str, glicko2.Rating] = {}
    for row in rows:
        periods = glicko2.periods_between(row["rated_s"], row["now_s"], rating.period_seconds)
        before[str(row["player_id"])] = glicko2.decay(
            glicko2.Rating(row["rating"], row["rating_deviation"], row["volatility"]),
            periods,
            rating.max_rd,
        )
    if set(before) != {one, two}:
        return {}  # a player without a profile (cannot happen for Ranked): nothing to rate
    new_one, new_two = glicko2.rate_match(
        before[one], before[two], score_of(one, winner_id), rating.tau, rating.max_rd
    )
    return {one: RatingChange(before[one], new_one), two: RatingChange(before[two], new_two)}


# Serialises the recordings of one match id when the request carries no formation time (the
# second key is the match id's hash); the first key only sets these locks apart from others.
_RECORD_LOCK = 0x6D617463  # "matc"


def formed_at(request: p.BattleRequest, started_at: datetime) -> datetime:
    """The match's partition key: when it was formed, the same for every run of the battle; for
    a request from a sender that predates the field, when this run started."""
    if request.formed_at_ms > 0:
        return datetime.fromtimestamp(request.formed_at_ms / 1000, UTC)
    return started_at


_snapshot = msgspec.json.Decoder(BattleSnapshot)
_ref = msgspec.json.Decoder(SnapshotRef)
_json = msgspec.json.Encoder()


async def catalogue_cards(
    conn: db.Connection | asyncpg.Pool, version: int, card_ids: Sequence[int]
) -> dict[int, CardSnapshot]:
    """The numbers the cards had in catalogue `version` (those it has), by card id."""
    rows = await conn.fetch(
        "SELECT card_id, name, cost, attack, health FROM catalogue_cards"
        " WHERE version = $1 AND card_id = ANY($2::int[])",
        version,
        sorted(set(card_ids)),
    )
    return {r["card_id"]: CardSnapshot(**dict(r)) for r in rows}


class CatalogueCache:
    """The cards of catalogue versions, read once per version and database: a version never
    changes once loaded (servers/common/content.py), so the runner checks a snapshot against it
    in memory instead of querying twice per recorded match."""

    def __init__(self) -> None:
        self._versions: dict[int, dict[int, CardSnapshot]] = {}

    async def cards(
        self, conn: db.Connection | asyncpg.Pool, version: int, card_ids: Sequence[int]
    ) -> dict[int, CardSnapshot]:
        known = self._versions.get(version)
        if known is None:
            rows = await conn.fetch(
                "SELECT card_id, name, cost, attack, health FROM catalogue_cards"
                " WHERE version = $1",
                version,
            )
            known = {r["card_id"]: CardSnapshot(**dict(r)) for r in rows}
            if known:  # a version not loaded (yet) is asked again next time
                self._versions[version] = known
        return {card_id: known[card_id] for card_id in card_ids if card_id in known}


def resolve(player_id: str, ref: SnapshotRef, cards: Mapping[int, CardSnapshot]) -> BattleSnapshot:
    """The battle snapshot a reference stands for, given its version's cards (KeyError for a
    card the version lacks)."""
    return BattleSnapshot(
        player_id=player_id,
        name=ref.name,
        level=ref.level,
        rating=ref.rating,
        deck=tuple(cards[card_id] for card_id in ref.deck),
        pod_id="",
        catalogue_version=ref.catalogue_version,
    )


async def resolve_ref(
    conn: db.Connection | asyncpg.Pool, player_id: str, ref: SnapshotRef
) -> BattleSnapshot:
    """A stored reference back into a BattleSnapshot, from `catalogue_cards` of its version."""
    return resolve(player_id, ref, await catalogue_cards(conn, ref.catalogue_version, ref.deck))


async def _reference(
    conn: db.Connection, snap: BattleSnapshot, catalogue: CatalogueCache | None
) -> SnapshotRef | None:
    """The snapshot by reference when its version's cards give back exactly its deck (so the
    match re-simulates to the same bytes); None when they do not (no version, or numbers not
    from it): the record then keeps the whole snapshot."""
    if snap.catalogue_version < 1:
        return None
    ref = SnapshotRef(
        catalogue_version=snap.catalogue_version,
        name=snap.name,
        level=snap.level,
        rating=snap.rating,
        deck=tuple(card.card_id for card in snap.deck),
    )
    if catalogue is not None:
        cards = await catalogue.cards(conn, ref.catalogue_version, ref.deck)
    else:
        cards = await catalogue_cards(conn, ref.catalogue_version, ref.deck)
    if any(cards.get(card.card_id) != card for card in snap.deck):
        return None
    return ref


async def record_match(
    pool: asyncpg.Pool,
    request: p.BattleRequest,
    *,
    winner_id: str | None,
    end_reason: str,
    turns: int,
    pod_id: str,
    started_at: datetime,
    rating: RatingSettings | None = None,
    engine_version: int = 1,
    catalogue: CatalogueCache | None = None,
) -> Recorded | None:
    """Store the match's inputs (seed, the version of the engine that played it, each
    participant's snapshot by reference, or whole when it is not its catalogue version's) and
    outcome, its participants and their profile counters in one transaction; for a Ranked
    match also both players' new Glicko-2 ratings. The timeline is not stored: `timeline`
    produces it again.

    Returns each player's profile after the match, or None (and changes nothing) when this
    match id was recorded before, so a battle request delivered twice is persisted once, and
    ratings move once. The tables are
    partitioned by `formed_at`, so the primary key is (match_id, formed_at): every run of one
    battle carries the same `formed_at_ms` and meets the first run's row there. The insert
    also looks for the match id in every partition, so even a request without it (its
    `formed_at` is then this run's start) is recorded once; concurrent runs of such a request
    are serialised by a lock on the match id.
    """
    formed = formed_at(request, started_at)
    ranked = request.game_mode == GameMode.RANKED.value
    async with pool.acquire() as conn:
        insert = functools.partial(
            _insert_match,
            conn,
            request,
            winner_id,
            end_reason,
            turns,
            pod_id,
            started_at,
            formed,
            engine_version,
            catalogue,
        )
        if request.formed_at_ms > 0 and not ranked:
            return await insert({})  # one statement, atomic by itself: one round trip
        async with conn.transaction():
            if request.formed_at_ms <= 0:
                await conn.execute(
                    "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                    _RECORD_LOCK,
                    request.match_id,
                )
            # Ranked: both profiles locked (id order) and rated first; the insert applies the
            # new ratings only if it records the match.
            changes = (
                await _rate(conn, request, winner_id, rating or RatingSettings()) if ranked else {}
            )
            return await insert(changes)


# The match, its two participants and both profiles' counters (and for Ranked their new
# ratings) in one statement: the participants and profiles change only through rows of `m`,
# i.e. only when this call inserted the match (an id recorded before changes nothing).
_INSERT_MATCH = """
WITH m AS (
    INSERT INTO match_history (match_id, mode, seed, winner_id, end_reason, turns, pod_id,
                               started_at, formed_at, engine_version)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
    WHERE NOT EXISTS (SELECT 1 FROM match_history WHERE match_id = $1)
    ON CONFLICT (match_id, formed_at) DO NOTHING
    RETURNING match_id, formed_at
), p AS (
    SELECT * FROM unnest($11::bigint[], $12::smallint[], $13::text[], $14::float8[],
                         $15::float8[], $16::text[], $17::text[], $18::float8[], $19::float8[],
                         $20::float8[], $21::float8[], $22::int[])
        AS p(player_id, slot, result, rating_before, rating_after, snapshot, snapshot_ref,
             rd_before, rd_after, volatility_before, volatility_after, experience)
), participants AS (
    INSERT INTO match_participants (match_id, player_id, slot, result, rating_before,
        rating_after, snapshot, snapshot_ref, rd_before, rd_after, volatility_before,
        volatility_after, formed_at)
    SELECT m.match_id, p.player_id, p.slot, p.result, p.rating_before, p.rating_after,
           p.snapshot::jsonb, p.snapshot_ref::json, p.rd_before, p.rd_after,
           p.volatility_before, p.volatility_after, m.formed_at
    FROM m, p
), profiles AS (
    UPDATE player_profiles f SET
        wins = f.wins + (p.result = 'win')::int,
        losses = f.losses + (p.result = 'loss')::int,
        draws = f.draws + (p.result = 'draw')::int,
        experience = f.experience + p.experience,
        level = 1 + (f.experience + p.experience) / 100,
        updated_at = now(),
        rating = CASE WHEN $23 THEN p.rating_after ELSE f.rating END,
        rating_deviation = CASE WHEN $23 THEN p.rd_after ELSE f.rating_deviation END,
        volatility = CASE WHEN $23 THEN p.volatility_after ELSE f.volatility END,
        rated_at = CASE WHEN $23 THEN now() ELSE f.rated_at END
    FROM m, p WHERE f.player_id = p.player_id
    RETURNING f.player_id, f.level, f.rating
)
SELECT pr.player_id, pr.level, pr.rating FROM m LEFT JOIN profiles pr ON true
"""


async def _insert_match(
    conn: db.Connection,
    request: p.BattleRequest,
    winner_id: str | None,
    end_reason: str,
    turns: int,
    pod_id: str,
    started_at: datetime,
    formed: datetime,
    engine_version: int,
    catalogue: CatalogueCache | None,
    changes: Mapping[str, RatingChange],
) -> Recorded | None:
    columns: list[list[object]] = [[] for _ in range(12)]
    for slot, candidate in ((1, request.player1), (2, request.player2)):
        snap = candidate.metadata
        change = changes.get(snap.player_id)
        ref = await _reference(conn, snap, catalogue)
        result = result_of(snap.player_id, winner_id)
        row = (
            int(snap.player_id),
            slot,
            result,
            change.before.rating if change else snap.rating,
            change.after.rating if change else snap.rating,
            None if ref else p.encode(snap).decode(),
            _json.encode(ref).decode() if ref else None,
            change.before.rd if change else None,
            change.after.rd if change else None,
            change.before.volatility if change else None,
            change.after.volatility if change else None,
            EXPERIENCE[result],
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    rows = await conn.fetch(
        _INSERT_MATCH,
        request.match_id,
        request.game_mode,
        request.seed,
        int(winner_id) if winner_id is not None else None,
        end_reason,
        turns,
        pod_id,
        started_at,
        formed,
        engine_version,
        *columns,
        bool(changes),
    )
    if not rows:
        return None
    return {
        str(r["player_id"]): ProfileAfter(r["level"], r["rating"])
        for r in rows
        if r["player_id"] is not None
    }


async def is_recorded(pool: asyncpg.Pool, match_id: str) -> bool:
    """Whether this match id was recorded (in any month's partition)."""
    found = await pool.fetchval(
        "SELECT true FROM match_history WHERE match_id = $1::uuid LIMIT 1", match_id
    )
    return bool(found)


async def stored_snapshots(
    conn: db.Connection | asyncpg.Pool, match_id: object, formed: datetime
) -> list[BattleSnapshot]:
    """The participants' battle snapshots, by slot: resolved from their references, or the
    whole snapshots stored (matches recorded before references, or not from a version)."""
    rows = await conn.fetch(
        "SELECT player_id, snapshot::text AS snapshot, snapshot_ref::text AS ref"
        " FROM match_participants WHERE match_id = $1 AND formed_at = $2 ORDER BY slot",
        match_id,
        formed,
    )
    return [
        _snapshot.decode(r["snapshot"])
        if r["ref"] is None
        else await resolve_ref(conn, str(r["player_id"]), _ref.decode(r["ref"]))
        for r in rows
    ]


async def simulate_again(
    conn: db.Connection | asyncpg.Pool,
    match: asyncpg.Record,
    registry: Mapping[int, engines.Engine] = engines.ENGINES,
) -> bytes:
    """The timeline of a recorded match simulated again from its inputs by the engine version
    that played it. `match`: its row (match_id, formed_at, seed, engine_version)."""
    one, two = await stored_snapshots(conn, match["match_id"], match["formed_at"])
    play = engines.engine(match["engine_version"], registry)
    return encode_timeline(play(one, two, match["seed"]).events)


async def timeline(
    conn: db.Connection | asyncpg.Pool,
    match: asyncpg.Record,
    registry: Mapping[int, engines.Engine] = engines.ENGINES,
) -> bytes:
    """A recorded match's timeline: the stored one (matches recorded before the inputs-only
    format), else simulated again. `match` as for `simulate_again`, plus `timeline` (text)."""
    stored: str | None = match["timeline"]
    if stored is not None:
        return stored.encode()
    return await simulate_again(conn, match, registry)


async def load_result(pool: asyncpg.Pool, match_id: str, player_id: str) -> p.BattleResult | None:
    """A recorded match's result as one player receives it, or None if not recorded (yet)."""
    row = await pool.fetchrow(
        "SELECT h.match_id, h.formed_at, h.engine_version, h.mode, h.seed, h.winner_id,"
        " h.turns, h.timeline::text AS timeline, o.player_id AS opponent FROM match_history h"
        " JOIN match_participants me ON me.match_id = h.match_id"
        " AND me.formed_at = h.formed_at AND me.player_id = $2"
        " JOIN match_participants o ON o.match_id = h.match_id"
        " AND o.formed_at = h.formed_at AND o.player_id <> $2"
        " WHERE h.match_id = $1::uuid",
        match_id,
        int(player_id),
    )
    if row is None:
        return None
    return p.BattleResult(
        match_id=match_id,
        game_mode=row["mode"],
        player_id=player_id,
        opponent_id=str(row["opponent"]),
        seed=row["seed"],
        winner_id=None if row["winner_id"] is None else str(row["winner_id"]),
        turns=row["turns"],
        timeline=msgspec.Raw(await timeline(pool, row)),
    )
