"""Steam ticket login: the Steamworks Web API client and the login policy.

`SteamWebApi.verify` sends the client's hex ticket (from `GetAuthTicketForWebApi`) to
`ISteamUserAuth/AuthenticateUserTicket/v1` with the publisher key, app id and identity, and
parses the documented reply:

    {"response": {"params": {"result": "OK", "steamid": "...", "ownersteamid": "...",
                             "vacbanned": false, "publisherbanned": false}}}
    {"response": {"error": {"errorcode": 101, "errordesc": "Invalid ticket"}}}

Steam being slow or down never hangs a login: each attempt has a timeout, timeouts, connection
errors and 5xx answers are retried a bounded number of times with backoff, and then the login
fails with STEAM_UNAVAILABLE (retryable). `check_policy` applies the configured ban and Family
Sharing policy. The development simulator (`devtools/steam_sim.py`) speaks the same format.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Protocol

import httpx
import msgspec

from servers.common.config import SteamSettings
from servers.common.errors import ErrorCode, GameError

log = logging.getLogger("cardgame.auth.steam")

AUTHENTICATE_PATH = "/ISteamUserAuth/AuthenticateUserTicket/v1/"
MAX_TICKET_HEX = 4096  # Web API tickets are a few hundred bytes; anything near this is junk
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")


@dataclass(frozen=True)
class VerifiedTicket:
    steam_id: int
    owner_steam_id: int
    vac_banned: bool
    publisher_banned: bool

    @property
    def family_shared(self) -> bool:
        return self.owner_steam_id != self.steam_id


class TicketVerifier(Protocol):
    async def verify(self, ticket_hex: str) -> VerifiedTicket: ...


# The documented reply, decoded strictly (a malformed reply is Steam misbehaving: retryable).
class _Params(msgspec.Struct):
    result: str
    steamid: str
    ownersteamid: str = ""
    vacbanned: bool = False
    publisherbanned: bool = False


class _Error(msgspec.Struct):
    errorcode: int
    errordesc: str = ""


class _Response(msgspec.Struct):
    params: _Params | None = None
    error: _Error | None = None


class _Envelope(msgspec.Struct):
    response: _Response


_decoder = msgspec.json.Decoder(_Envelope)


def check_ticket_format(ticket: object) -> str:
    """The ticket as Steam wants it, or INVALID_MESSAGE before anything is sent to Steam."""
    if not isinstance(ticket, str) or not ticket:
        raise GameError(ErrorCode.INVALID_MESSAGE, "ticket must be a non-empty hex string")
    if len(ticket) > MAX_TICKET_HEX or not _HEX.match(ticket):
        raise GameError(
            ErrorCode.INVALID_MESSAGE,
            f"ticket must be an even-length hex string of at most {MAX_TICKET_HEX} characters",
        )
    return ticket


class SteamUnavailable(GameError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.STEAM_UNAVAILABLE, f"Steam is unavailable: {message}")


class SteamWebApi:
    """The production client. One instance (one connection pool) per auth server process."""

    def __init__(self, settings: SteamSettings, http: httpx.AsyncClient | None = None) -> None:
        self._s = settings
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        self.url = settings.web_api_url.rstrip("/") + AUTHENTICATE_PATH

    async def aclose(self) -> None:
        await self._http.aclose()

    async def verify(self, ticket_hex: str) -> VerifiedTicket:
        params = {
            "key": self._s.web_api_key,
            "appid": str(self._s.app_id),
            "ticket": check_ticket_format(ticket_hex),
            "identity": self._s.identity,
        }
        problem = ""
        for attempt in range(self._s.retries + 1):
            if attempt:
                await asyncio.sleep(self._s.retry_backoff * 2 ** (attempt - 1))
            try:
                response = await self._http.get(self.url, params=params, timeout=self._s.timeout)
            except httpx.TimeoutException:
                problem = f"no answer within {self._s.timeout:g} s"
            except httpx.TransportError as exc:
                problem = f"connection failed ({type(exc).__name__})"
            else:
                if response.status_code >= 500 or response.status_code == 429:
                    problem = f"HTTP {response.status_code}"
                elif response.status_code in (401, 403):
                    # A wrong or revoked publisher key: our configuration, not the player's fault.
                    log.error("Steam refused the Web API key (HTTP %d)", response.status_code)
                    raise SteamUnavailable("the server's Steam Web API key was refused")
                else:
                    return self._parse(response)
            log.warning(
                "Steam AuthenticateUserTicket attempt %d/%d: %s",
                attempt + 1,
                self._s.retries + 1,
                problem,
            )
        raise SteamUnavailable(problem)

    def _parse(self, response: httpx.Response) -> VerifiedTicket:
        try:
            body = _decoder.decode(response.content).response
        except msgspec.DecodeError as exc:
            log.error(
                "Steam answered HTTP %d with an unexpected body: %s", response.status_code, exc
            )
            raise SteamUnavailable("unexpected reply") from None
        if body.error is not None:
            raise GameError(
                ErrorCode.STEAM_TICKET_INVALID,
                f"Steam rejected the ticket: {body.error.errordesc or 'error'}"
                f" (errorcode {body.error.errorcode})",
            )
        params = body.params
        if params is None or params.result != "OK":
            raise GameError(
                ErrorCode.STEAM_TICKET_INVALID,
                f"Steam did not accept the ticket (result {params and params.result})",
            )
        try:
            steam_id = int(params.steamid)
            owner = int(params.ownersteamid or params.steamid)
        except ValueError:
            raise SteamUnavailable("unexpected steamid in reply") from None
        return VerifiedTicket(steam_id, owner, params.vacbanned, params.publisherbanned)


def check_policy(ticket: VerifiedTicket, settings: SteamSettings) -> None:
    """Refuse the login when the configured policy says so."""
    if ticket.publisher_banned and settings.deny_publisher_banned:
        raise GameError(ErrorCode.STEAM_BANNED, "the account is banned by the publisher")
    if ticket.vac_banned and settings.deny_vac_banned:
        raise GameError(ErrorCode.STEAM_BANNED, "the account has a VAC ban")
    if ticket.family_shared and settings.deny_family_shared:
        raise GameError(
            ErrorCode.STEAM_FAMILY_SHARED,
            "the game is borrowed through Family Sharing; buy it to play online",
        )
