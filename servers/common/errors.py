"""Stable error codes shared by every server and the client protocol.

Codes are part of the public API: never rename one, only add. Exceptions become codes only at
the edges (the WebSocket handler, the HTTP routes, the match server's request loop).
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # Protocol: the frame itself is wrong.
    MALFORMED_JSON = "MALFORMED_JSON"
    UNKNOWN_MESSAGE = "UNKNOWN_MESSAGE"
    INVALID_MESSAGE = "INVALID_MESSAGE"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    # Authentication (HTTP 401 / WebSocket close 4401).
    UNAUTHORIZED = "UNAUTHORIZED"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    DEV_LOGIN_DISABLED = "DEV_LOGIN_DISABLED"
    STEAM_LOGIN_UNAVAILABLE = "STEAM_LOGIN_UNAVAILABLE"
    # Session.
    SESSION_REPLACED = "SESSION_REPLACED"
    # Lobby and decks.
    DECK_NOT_FOUND = "DECK_NOT_FOUND"
    INVALID_DECK = "INVALID_DECK"
    # Queueing.
    NO_LEGAL_DECK = "NO_LEGAL_DECK"
    UNKNOWN_MODE = "UNKNOWN_MODE"
    ALREADY_QUEUED = "ALREADY_QUEUED"
    NOT_QUEUED = "NOT_QUEUED"
    IN_BATTLE = "IN_BATTLE"
    REQUEST_IN_PROGRESS = "REQUEST_IN_PROGRESS"
    MATCH_SERVER_UNAVAILABLE = "MATCH_SERVER_UNAVAILABLE"
    MAINTENANCE = "MAINTENANCE"
    SERVER_DRAINING = "SERVER_DRAINING"
    # Anything else: a bug or an outage, never caused by the client.
    INTERNAL = "INTERNAL"
    # Steam login, sessions, rate limits.
    STEAM_TICKET_INVALID = "STEAM_TICKET_INVALID"
    STEAM_UNAVAILABLE = "STEAM_UNAVAILABLE"
    STEAM_BANNED = "STEAM_BANNED"
    STEAM_FAMILY_SHARED = "STEAM_FAMILY_SHARED"
    INVALID_REFRESH_TOKEN = "INVALID_REFRESH_TOKEN"
    REFRESH_TOKEN_REUSED = "REFRESH_TOKEN_REUSED"
    TOKEN_REVOKED = "TOKEN_REVOKED"
    RATE_LIMITED = "RATE_LIMITED"
    SLOW_CONSUMER = "SLOW_CONSUMER"
    # Parties, history and replays.
    IN_PARTY = "IN_PARTY"
    ALREADY_IN_PARTY = "ALREADY_IN_PARTY"
    NOT_IN_PARTY = "NOT_IN_PARTY"
    PARTY_NOT_FOUND = "PARTY_NOT_FOUND"
    PARTY_EXPIRED = "PARTY_EXPIRED"
    PARTY_FULL = "PARTY_FULL"
    PARTY_NOT_READY = "PARTY_NOT_READY"
    MATCH_NOT_FOUND = "MATCH_NOT_FOUND"
    NOT_YOUR_MATCH = "NOT_YOUR_MATCH"


# One line of documentation per code; docs/protocol.md is generated from this table.
DESCRIPTIONS: dict[ErrorCode, str] = {
    ErrorCode.MALFORMED_JSON: "The frame is not valid UTF-8 JSON.",
    ErrorCode.UNKNOWN_MESSAGE: "The `type` field is missing or names no client message.",
    ErrorCode.INVALID_MESSAGE: "A known message with missing, wrongly typed or out-of-range"
    " fields.",
    ErrorCode.MESSAGE_TOO_LARGE: "The frame is larger than the server handles as a message.",
    ErrorCode.UNAUTHORIZED: "The token is missing, forged, or for another audience or issuer.",
    ErrorCode.TOKEN_EXPIRED: "The token has expired: log in again.",
    ErrorCode.DEV_LOGIN_DISABLED: "Development login is switched off in this environment.",
    ErrorCode.STEAM_LOGIN_UNAVAILABLE: "Steam login is not configured on this server.",
    ErrorCode.SESSION_REPLACED: "Another connection for the same player took over this session.",
    ErrorCode.DECK_NOT_FOUND: "No deck with that id belongs to the player.",
    ErrorCode.INVALID_DECK: "The deck breaks a deck rule (size, copies, ownership).",
    ErrorCode.NO_LEGAL_DECK: "Queueing needs an active, legal deck.",
    ErrorCode.UNKNOWN_MODE: "The game mode does not exist or is not open.",
    ErrorCode.ALREADY_QUEUED: "The player is already in a queue.",
    ErrorCode.NOT_QUEUED: "The player is not in a queue.",
    ErrorCode.IN_BATTLE: "The player is in a battle; wait for its result.",
    ErrorCode.REQUEST_IN_PROGRESS: "A queue request of this player is still being handled.",
    ErrorCode.MATCH_SERVER_UNAVAILABLE: "No match server answered in time; try again.",
    ErrorCode.MAINTENANCE: "Matchmaking is in maintenance mode; try again later.",
    ErrorCode.SERVER_DRAINING: "This game server is shutting down; reconnect to another one.",
    ErrorCode.INTERNAL: "An unexpected server error; the request had no effect.",
    ErrorCode.STEAM_TICKET_INVALID: "Steam rejected the auth ticket (invalid, expired, or for"
    " another app or identity): get a new ticket.",
    ErrorCode.STEAM_UNAVAILABLE: "Steam did not answer in time or failed; retry later"
    " (HTTP 503 with Retry-After).",
    ErrorCode.STEAM_BANNED: "The Steam account is banned (VAC or publisher) and this server"
    " refuses banned accounts.",
    ErrorCode.STEAM_FAMILY_SHARED: "The game is borrowed through Steam Family Sharing and this"
    " server refuses borrowed copies.",
    ErrorCode.INVALID_REFRESH_TOKEN: "The refresh token is unknown, expired or revoked: log in"
    " again.",
    ErrorCode.REFRESH_TOKEN_REUSED: "An already used refresh token was presented again; the"
    " whole session was revoked: log in again.",
    ErrorCode.TOKEN_REVOKED: "The session of this token was logged out or revoked: log in again.",
    ErrorCode.RATE_LIMITED: "Too many requests; slow down and retry after the indicated time.",
    ErrorCode.SLOW_CONSUMER: "The client stopped reading its socket while replies piled up.",
    ErrorCode.IN_PARTY: "The player is in a party: only the party duel (mode `party`) can be"
    " queued; leave the party first.",
    ErrorCode.ALREADY_IN_PARTY: "The player is already in a party; leave it first.",
    ErrorCode.NOT_IN_PARTY: "The player is not in a party.",
    ErrorCode.PARTY_NOT_FOUND: "No party has that invite code.",
    ErrorCode.PARTY_EXPIRED: "The party has expired; create a new one.",
    ErrorCode.PARTY_FULL: "The party already has two members.",
    ErrorCode.PARTY_NOT_READY: "A party duel needs a party of two.",
    ErrorCode.MATCH_NOT_FOUND: "No recorded match has that id.",
    ErrorCode.NOT_YOUR_MATCH: "The match was played by other players; only its players may"
    " fetch its replay.",
}


class GameError(Exception):
    """An expected failure with a stable code; turned into an error message at the edge."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        self.code = code
        self.message = message or DESCRIPTIONS[code]
        super().__init__(f"{code}: {self.message}")
