"""The client protocol: decoding rules, and the docs and schema kept true to the models."""

from __future__ import annotations

import json

import msgspec
import pytest

from servers.cli import schema_text
from servers.common import protocol as p
from servers.common import timeline as events
from servers.common.errors import DESCRIPTIONS, ErrorCode
from tests.support import ROOT
from tests.support.helpers import expect_error

INVALID = ErrorCode.INVALID_MESSAGE
DECK = b'{"type": "save_deck", "name": "x", "cards": [%s]}'
DOCS = ROOT / "docs"


def test_every_error_code_has_a_description() -> None:
    assert set(DESCRIPTIONS) == set(ErrorCode)


def test_client_metadata_is_not_part_of_enqueue() -> None:
    message = p.decode_client(b'{"type":"enqueue","metadata":{"rating":9999},"pod_id":"x"}')
    assert message == p.Enqueue(mode="normal")


@pytest.mark.parametrize(
    ("frame", "code", "ref"),
    [
        (b"", ErrorCode.MALFORMED_JSON, None),
        (b"{", ErrorCode.MALFORMED_JSON, None),
        (b"null", ErrorCode.INVALID_MESSAGE, None),
        (b"[" * 5000 + b"]" * 5000, ErrorCode.MALFORMED_JSON, None),  # found by the fuzzer
        (b"[1, x", ErrorCode.MALFORMED_JSON, None),  # found by the fuzzer: not typed first
        (b'{"type":"ping","x":' + b"[" * 5000 + b"]" * 5000 + b"}", ErrorCode.MALFORMED_JSON, None),
        (b'{"type": 5, "id": "a"}', ErrorCode.UNKNOWN_MESSAGE, "a"),
        (b'{"type": ["ping"], "id": "a"}', ErrorCode.UNKNOWN_MESSAGE, "a"),  # unhashable
        (b'{"type": {"x": 1}}', ErrorCode.UNKNOWN_MESSAGE, None),
        (b'{"type": "set_active_deck", "deck_id": 9223372036854775808}', INVALID, None),
        (b'{"type": "set_active_deck", "deck_id": -9223372036854775809}', INVALID, None),
        (DECK % b'{"card_id": 2147483648, "count": 1}', INVALID, None),  # INTEGER
        (DECK % b'{"card_id": 1, "count": 32768}', INVALID, None),  # SMALLINT
        (b'{"type": "join_party", "code": "AB\\u0000CDE", "id": "c"}', INVALID, "c"),
        (b'{"type": "get_decks", "id": 5}', ErrorCode.INVALID_MESSAGE, None),
        (
            b'{"type": "save_deck", "name": "x", "cards": [{"card_id": 1}], "id": "b"}',
            ErrorCode.INVALID_MESSAGE,
            "b",
        ),
    ],
)
def test_decode_errors_have_codes(frame: bytes, code: ErrorCode, ref: str | None) -> None:
    with expect_error(code) as caught:
        p.decode_client(frame)
    assert isinstance(caught.value, p.ProtocolError)
    assert caught.value.ref == ref


@pytest.mark.parametrize(
    ("name", "char"),
    [
        ("a\x00b", "U+0000"),
        ("\x1b[31mred", "U+001B"),
        ("evil\u202egnp.exe", "U+202E"),
        ("x\u2066y\u2069", "U+2066"),
        ("tab\there", "U+0009"),
        ("line\n", "U+000A"),  # Python's `$` matches before a final newline: not an escape
        ("bom\ufeff", "U+FEFF"),
        ("zero\u200bwidth", "U+200B"),
    ],
)
def test_free_text_refuses_control_and_bidi_characters(name: str, char: str) -> None:
    frame = msgspec.json.encode({"type": "save_deck", "name": name, "cards": [], "id": "d"})
    with pytest.raises(p.ProtocolError) as caught:
        p.decode_client(frame)
    assert caught.value.code is INVALID and caught.value.ref == "d"
    assert f"`name` contains {char}" in caught.value.message
    assert p.clean_text(name) and p.text_problem(p.clean_text(name)) is None


@pytest.mark.parametrize(
    "name", ["Aggro", "café", "デッキ", "family \U0001f468\u200d\U0001f469", "a  b", "x" * 64]
)
def test_free_text_keeps_ordinary_text(name: str) -> None:
    frame = msgspec.json.encode({"type": "save_deck", "name": name, "cards": []})
    assert p.decode_client(frame) == p.SaveDeck(name=name, cards=[])
    assert p.text_problem(name) is None


def test_integers_at_the_database_limits_are_accepted() -> None:
    top = p.decode_client(b'{"type": "set_active_deck", "deck_id": 9223372036854775807}')
    assert top == p.SetActiveDeck(deck_id=2**63 - 1)


def test_every_message_round_trips() -> None:
    sent = p.Profile(
        id="1",
        player_id="1",
        name="a",
        level=1,
        experience=0,
        rating=1500.0,
        rating_deviation=350.0,
        wins=0,
        losses=0,
        draws=0,
    )
    assert p.decode_server(p.encode(sent)) == sent


def test_schema_file_is_generated_from_the_models() -> None:
    assert (DOCS / "protocol.schema.json").read_text() == schema_text(), (
        "run: cardgame schema --write docs/protocol.schema.json"
    )


def _tags(union: object) -> set[str]:
    return {cls.__struct_config__.tag for cls in union.__args__}  # type: ignore[attr-defined]


def test_protocol_doc_names_every_message_event_and_code() -> None:
    text = (DOCS / "protocol.md").read_text()
    names = (
        _tags(p.AnyClientMessage)
        | _tags(p.AnyServerMessage)
        | _tags(events.Event)
        | {code.value for code in ErrorCode}
    )
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert missing == []


def test_schema_describes_both_directions() -> None:
    schema = json.loads(schema_text())
    assert set(schema["properties"]) == {"client_to_server", "server_to_client", "battle_event"}
    assert "Enqueue" in schema["$defs"] and "BattleEnd" in schema["$defs"]
