"""The Steam login policy (bans, Family Sharing), without Steam."""

from __future__ import annotations

import pytest

from servers.auth.steam import VerifiedTicket, check_policy
from servers.common.config import SteamSettings
from servers.common.errors import ErrorCode
from tests.support.helpers import expect_error


@pytest.mark.parametrize(
    ("ticket_", "deny", "code"),
    [
        (VerifiedTicket(1, 1, True, False), {"deny_vac_banned": True}, ErrorCode.STEAM_BANNED),
        (VerifiedTicket(1, 1, True, False), {}, None),
        (VerifiedTicket(1, 1, False, True), {}, ErrorCode.STEAM_BANNED),
        (VerifiedTicket(1, 1, False, True), {"deny_publisher_banned": False}, None),
        (
            VerifiedTicket(1, 2, False, False),
            {"deny_family_shared": True},
            ErrorCode.STEAM_FAMILY_SHARED,
        ),
        (VerifiedTicket(1, 2, False, False), {}, None),
    ],
)
def test_policy(ticket_: VerifiedTicket, deny: dict[str, bool], code: ErrorCode | None) -> None:
    settings = SteamSettings(**deny)
    if code is None:
        check_policy(ticket_, settings)
    else:
        with expect_error(code):
            check_policy(ticket_, settings)
