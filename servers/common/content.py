"""The card catalogue as versioned data: `content/cards.toml`, checked against
`content/cards.schema.json`, loaded into PostgreSQL as immutable, content-hashed versions.

Pure part: `parse_catalogue` reads the TOML text, validates it (the schema, then what a schema
cannot say: unique card ids, unique names) and computes the canonical hash, the SHA-256 of the
cards as JSON with sorted keys, ordered by card id, so key order, card order, comments and
layout of the file do not change it. No field refers to another card yet; a field that does
must be checked against the file's card ids in `_problems`.

I/O part: `load` writes one version in one transaction (migration 0005): an unknown hash becomes
a new version (its cards in `catalogue_cards`), a known one is made current again, the current
one changes nothing; `cards` is brought to the version's numbers. `announce` tells the game
servers on `Keys.catalogue_channel` after the commit.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg
import jsonschema
import redis.asyncio as aioredis

from servers.common import db
from servers.common.keys import Keys

CONTENT_DIR = Path(__file__).resolve().parents[2] / "content"
CARDS_FILE = CONTENT_DIR / "cards.toml"
SCHEMA_FILE = CONTENT_DIR / "cards.schema.json"
# Serialises loaders (two deploy jobs at once): any constant, the same in every process.
_LOAD_LOCK = 0x63617432  # "cat2"


class ContentError(Exception):
    """Content refused; the message names the file and the card."""


@dataclass(frozen=True)
class Card:
    card_id: int
    name: str
    cost: int
    attack: int
    health: int
    rarity: str
    starter_copies: int


@dataclass(frozen=True)
class Catalogue:
    cards: tuple[Card, ...]  # ordered by card id
    content_hash: str
    source: str  # the file it was read from, as given (recorded with the version)


@dataclass(frozen=True)
class Outcome:
    """What a load did: `loaded` a new version, `restored` an older one, or `unchanged`."""

    status: str
    version: int

    def __str__(self) -> str:
        return f"{self.status}: version {self.version}"


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return loaded


def content_hash(cards: tuple[Card, ...]) -> str:
    canonical = json.dumps(
        {"cards": [asdict(card) for card in sorted(cards, key=lambda c: c.card_id)]},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _card_label(document: Any, index: object) -> str:
    """`card 4 (Goblin Cutpurse)` for the index-th card of the document, as far as it says."""
    try:
        card = document["cards"][index]
        return f"card {card['card_id']} ({card['name']})"
    except (KeyError, IndexError, TypeError):
        return f"cards[{index}]"


def _problems(document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    problems = []
    for error in errors:
        path = list(error.path)
        if path[:1] == ["cards"] and len(path) > 1:
            path[:2] = [_card_label(document, path[1])]
        problems.append(": ".join([*map(str, path), error.message]))
    if problems:
        return problems
    seen_ids: dict[int, str] = {}
    seen_names: dict[str, int] = {}
    for card in document["cards"]:
        card_id, name = card["card_id"], card["name"]
        if card_id in seen_ids:
            problems.append(f"card {card_id} ({name}): duplicate id, also {seen_ids[card_id]}'s")
        if name in seen_names:
            problems.append(
                f"card {card_id} ({name}): duplicate name, also card {seen_names[name]}'s"
            )
        seen_ids.setdefault(card_id, name)
        seen_names.setdefault(name, card_id)
    return problems


def parse_catalogue(text: str, source: str) -> Catalogue:
    """The catalogue in `text` (TOML), or ContentError naming `source` and every bad card."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ContentError(f"{source}: not valid TOML: {exc}") from exc
    problems = _problems(document)
    if problems:
        raise ContentError(f"{source}: " + "; ".join(problems))
    cards = tuple(sorted((Card(**card) for card in document["cards"]), key=lambda c: c.card_id))
    return Catalogue(cards, content_hash(cards), source)


def read_catalogue(path: Path = CARDS_FILE) -> Catalogue:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ContentError(f"{path}: cannot read it: {exc}") from exc
    return parse_catalogue(text, str(path))


# --- PostgreSQL and Redis ---


async def current_version(conn: db.Connection | asyncpg.Pool) -> int | None:
    """The version `cards` holds now; None before any catalogue was loaded."""
    version: int | None = await conn.fetchval(
        "SELECT version FROM catalogue_activations ORDER BY activation_id DESC LIMIT 1"
    )
    return version


async def load(conn: db.Connection, catalogue: Catalogue) -> Outcome:
    """Make `catalogue` the current version, in one transaction; ContentError (nothing written)
    when it drops a card that players' decks or collections still hold."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOAD_LOCK)
        known = await conn.fetchval(
            "SELECT version FROM catalogue_versions WHERE content_hash = $1",
            catalogue.content_hash,
        )
        if known is not None and known == await current_version(conn):
            return Outcome("unchanged", known)
        await _refuse_dropped_cards(conn, catalogue)
        if known is None:
            outcome = Outcome("loaded", await _insert_version(conn, catalogue))
        else:
            outcome = Outcome("restored", known)
        await _apply(conn, catalogue)
        await conn.execute(
            "INSERT INTO catalogue_activations (version, source) VALUES ($1, $2)",
            outcome.version,
            catalogue.source,
        )
    return outcome


def _columns(catalogue: Catalogue) -> list[list[Any]]:
    """The cards column by column, for `unnest`."""
    return [
        list(column) for column in zip(*(asdict(c).values() for c in catalogue.cards), strict=True)
    ]


async def _refuse_dropped_cards(conn: db.Connection, catalogue: Catalogue) -> None:
    rows = await conn.fetch(
        "SELECT card_id, name FROM cards c WHERE card_id <> ALL($1::int[])"
        " AND (EXISTS (SELECT 1 FROM deck_cards d WHERE d.card_id = c.card_id)"
        "   OR EXISTS (SELECT 1 FROM player_card_collection o WHERE o.card_id = c.card_id))"
        " ORDER BY card_id",
        [card.card_id for card in catalogue.cards],
    )
    if rows:
        named = ", ".join(f"card {r['card_id']} ({r['name']})" for r in rows)
        raise ContentError(
            f"{catalogue.source}: {named} missing, but players' decks or collections hold it:"
            " cards in use cannot be removed"
        )


async def _insert_version(conn: db.Connection, catalogue: Catalogue) -> int:
    version: int = await conn.fetchval(
        "INSERT INTO catalogue_versions (version, content_hash, source)"
        " SELECT coalesce(max(version), 0) + 1, $1, $2 FROM catalogue_versions"
        " RETURNING version",
        catalogue.content_hash,
        catalogue.source,
    )
    await conn.execute(
        "INSERT INTO catalogue_cards"
        " (version, card_id, name, cost, attack, health, rarity, starter_copies)"
        " SELECT $1, * FROM unnest($2::int[], $3::text[], $4::smallint[], $5::smallint[],"
        " $6::smallint[], $7::text[], $8::smallint[])",
        version,
        *_columns(catalogue),
    )
    return version


async def _apply(conn: db.Connection, catalogue: Catalogue) -> None:
    """`cards` := the catalogue (the cards it drops are in no deck or collection: checked)."""
    columns = _columns(catalogue)
    ids, names = columns[0], columns[1]
    await conn.execute("DELETE FROM cards WHERE card_id <> ALL($1::int[])", ids)
    # Names are unique and checked row by row: park the renamed ones on a name no card can have
    # (the schema forbids a leading space) first, so that two cards may swap names.
    await conn.execute(
        "UPDATE cards c SET name = ' ' || c.card_id FROM unnest($1::int[], $2::text[]) n(id, name)"
        " WHERE c.card_id = n.id AND c.name <> n.name",
        ids,
        names,
    )
    await conn.execute(
        "INSERT INTO cards (card_id, name, cost, attack, health, rarity, starter_copies)"
        " SELECT * FROM unnest($1::int[], $2::text[], $3::smallint[], $4::smallint[],"
        " $5::smallint[], $6::text[], $7::smallint[])"
        " ON CONFLICT (card_id) DO UPDATE SET name = EXCLUDED.name, cost = EXCLUDED.cost,"
        " attack = EXCLUDED.attack, health = EXCLUDED.health, rarity = EXCLUDED.rarity,"
        " starter_copies = EXCLUDED.starter_copies",
        *columns,
    )


async def load_url(url: str, catalogue: Catalogue) -> Outcome:
    conn = await asyncpg.connect(url)
    try:
        return await load(conn, catalogue)
    finally:
        await conn.close()


async def migrate_and_load(url: str, path: Path = CARDS_FILE) -> tuple[list[str], Outcome]:
    """The one way a database is made ready: the migrations, then the catalogue in `path`
    (`cardgame migrate`, `cardgame up`, the tests). Returns the migrations applied and what the
    load did."""
    catalogue = read_catalogue(path)  # refused before anything is written
    applied = await db.migrate(url)
    return applied, await load_url(url, catalogue)


async def announce(redis: aioredis.Redis, keys: Keys, version: int) -> None:
    """Tell every game server which catalogue version is current (after the commit)."""
    await redis.publish(keys.catalogue_channel, str(version))


def parse_announcement(data: bytes) -> int | None:
    """The version announced on `Keys.catalogue_channel`, or None for a malformed message."""
    try:
        version = int(data.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    return version if version >= 1 else None
