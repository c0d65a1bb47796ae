"""How the adversarial clients and the race probe name what a server told them."""

from __future__ import annotations

from websockets.exceptions import ConnectionClosedError
from websockets.frames import Close

from devtools.adversary import outcome_of
from servers.common import protocol as p
from servers.common.protocol import ServerError


def test_outcomes_name_replies_errors_and_close_codes() -> None:
    assert outcome_of(p.Enqueued(mode="normal")) == "Enqueued"
    assert outcome_of(ServerError("ALREADY_QUEUED", "already")) == "error:ALREADY_QUEUED"
    assert outcome_of(ConnectionClosedError(Close(4409, "REPLACED"), None)) == "closed:4409"
    assert outcome_of(ConnectionClosedError(None, None)) == "closed:None"
    assert outcome_of(TimeoutError()) == "exc:TimeoutError"
