"""Metric label values stay bounded (channels and message types, not ids)."""

from __future__ import annotations

from servers.common import metrics as common
from servers.common import protocol as p
from servers.common.errors import ErrorCode


def test_label_values_are_bounded() -> None:
    assert common.channel_label("cg", "cg:pod:pod-7:match_result") == "pod:*:match_result"
    assert common.channel_label("cg", "cg:battle:request") == "battle:request"
    assert common.message_type(p.Enqueued(mode="normal")) == "enqueued"
    assert common.message_type(p.error_message(ErrorCode.INTERNAL)) == "error"
