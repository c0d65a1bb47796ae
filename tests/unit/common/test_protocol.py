"""The client protocol: decoding rules, and the docs and schema kept true to the models."""

from __future__ import annotations

import json

import pytest

from servers.cli import schema_text
from servers.common import protocol as p
from servers.common import timeline as events
from servers.common.errors import DESCRIPTIONS, ErrorCode
from tests.support import ROOT
from tests.support.helpers import expect_error

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
