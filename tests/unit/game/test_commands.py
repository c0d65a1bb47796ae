"""The client command table covers the protocol."""

from __future__ import annotations

from servers.common import protocol as p
from servers.game.commands import HANDLERS


def test_every_client_message_has_exactly_one_handler() -> None:
    assert set(HANDLERS) == set(p.CLIENT_MESSAGE_TYPES)
