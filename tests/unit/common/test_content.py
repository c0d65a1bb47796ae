"""The card catalogue file: today's cards, its schema, validation and the canonical hash."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest

from servers.common.content import (
    CARDS_FILE,
    SCHEMA_FILE,
    ContentError,
    parse_announcement,
    parse_catalogue,
    read_catalogue,
    schema,
)
from tests.support import ROOT

CARD = """
[[cards]]
card_id = {card_id}
name = "{name}"
cost = 2
attack = {attack}
health = 3
rarity = "common"
starter_copies = 0
"""


def card(card_id: int = 1, name: str = "Ember Sprite", attack: int = 2) -> str:
    return CARD.format(card_id=card_id, name=name, attack=attack)


def test_the_file_holds_exactly_the_cards_of_migration_0002() -> None:
    sql = (ROOT / "migrations" / "0002_card_catalogue.sql").read_text()
    rows = re.findall(r"\((\d+), '((?:[^']|'')*)', (\d+), (\d+), (\d+), '(\w+)', (\d+)\)", sql)
    seeded = [
        (int(i), n.replace("''", "'"), int(c), int(a), int(h), r, int(s))
        for i, n, c, a, h, r, s in rows
    ]
    cards = read_catalogue().cards
    assert len(seeded) == 40
    assert [
        (c.card_id, c.name, c.cost, c.attack, c.health, c.rarity, c.starter_copies) for c in cards
    ] == seeded


def test_the_schema_is_a_valid_json_schema_and_the_file_meets_it() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_FILE.read_text()))
    jsonschema.validate(tomllib.loads(CARDS_FILE.read_text()), schema())


def test_hash_is_canonical_key_order_card_order_and_layout_do_not_matter() -> None:
    a = parse_catalogue(card(1, "A") + card(2, "B"), "a.toml")
    shuffled = """
# a comment
[[cards]]
starter_copies = 0
rarity = "common"
health = 3
attack = 2
cost = 2
name = "B"
card_id = 2
""" + card(1, "A")
    b = parse_catalogue(shuffled, "b.toml")
    assert a.content_hash == b.content_hash
    assert re.fullmatch(r"[0-9a-f]{64}", a.content_hash)
    assert [c.card_id for c in b.cards] == [1, 2]


def test_hash_changes_with_any_number() -> None:
    one = parse_catalogue(card(1, "A", attack=2), "x")
    other = parse_catalogue(card(1, "A", attack=3), "x")
    assert one.content_hash != other.content_hash


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (card(1, "A") + card(1, "B"), "card 1 (B): duplicate id"),
        (card(1, "A") + card(2, "A"), "card 2 (A): duplicate name"),
        (card(1, "A", attack=-1), "card 1 (A): attack: -1 is less than the minimum of 0"),
        (card(1, "A").replace('"common"', '"mythic"'), "card 1 (A): rarity: 'mythic' is not one"),
        (card(1, "A").replace("cost = 2\n", ""), "card 1 (A): 'cost' is a required property"),
        (card(1, "A") + "power = 3\n", "card 1 (A): Additional properties"),
        (card(1, " A"), "card 1 ( A): name: ' A' does not match"),
        ("cards = []\n", "cards: [] should be non-empty"),
        ("[[cards]\n", "not valid TOML"),
    ],
)
def test_bad_content_is_refused_naming_the_file_and_the_card(text: str, says: str) -> None:
    with pytest.raises(ContentError) as caught:
        parse_catalogue(text, "content/bad.toml")
    message = str(caught.value)
    assert message.startswith("content/bad.toml: ")
    assert says in message


def test_an_unreadable_file_is_refused_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ContentError, match=re.escape(f"{missing}: cannot read it")):
        read_catalogue(missing)


@pytest.mark.parametrize(("data", "version"), [(b"3", 3), (b"0", None), (b"x", None)])
def test_announcements(data: bytes, version: int | None) -> None:
    assert parse_announcement(data) == version
