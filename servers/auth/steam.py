"""The seam for Steam ticket login.

`TicketVerifier` is what the auth server needs from Steam: a hex ticket in, a SteamID64 out.
The Steamworks Web API client (ISteamUserAuth/AuthenticateUserTicket) plugs in here; until it is
configured, `/login/steam` answers STEAM_LOGIN_UNAVAILABLE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class VerifiedTicket:
    steam_id: int
    owner_steam_id: int
    vac_banned: bool
    publisher_banned: bool


class TicketVerifier(Protocol):
    async def verify(self, ticket_hex: str) -> VerifiedTicket: ...
