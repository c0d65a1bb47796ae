"""The battle timeline on the wire: gzip packing."""

from __future__ import annotations

import msgspec

from servers.common import protocol as p


def test_timeline_gzip_round_trips_and_is_deterministic() -> None:
    timeline = b'[{"type":"turn_start","turn":1,"player":"1","mana":1}]' * 100
    packed = p.gzip_timeline(timeline)
    assert packed == p.gzip_timeline(timeline)
    message = p.BattleResultMessage(
        match_id="m",
        mode="normal",
        seed=1,
        winner_id=None,
        outcome="draw",
        opponent_id="2",
        turns=1,
        timeline=msgspec.Raw(b"null"),
        timeline_gzip=packed,
    )
    decoded = p.decode_server(p.encode(message))
    assert isinstance(decoded, p.BattleResultMessage)
    assert p.timeline_bytes(decoded) == timeline
    assert len(packed) < len(timeline) / 5
