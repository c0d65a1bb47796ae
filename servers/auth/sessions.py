"""Login sessions in PostgreSQL: refresh tokens with rotation and reuse detection.

A login starts a session (a refresh-token family). Each refresh token is good for one use: the
refresh answers a new access token and a new refresh token, and marks the old one used. Presenting
a used token again means it was copied (by an attacker, or the client lost a reply); either way
the whole session is revoked and the player must log in again (OAuth 2.0 Security BCP, 4.14).
Only SHA-256 hashes of tokens are stored. Logout revokes the session the same way.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass

import asyncpg

from servers.common import db
from servers.common.errors import ErrorCode, GameError

PREFIX = "rt1."
_FORMAT = re.compile(r"^rt1\.[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True)
class Issued:
    refresh_token: str
    session_id: str


@dataclass(frozen=True)
class Rotated:
    issued: Issued
    player_id: int
    display_name: str


class RefreshReused(GameError):
    """A used refresh token came back: its session has been revoked."""

    def __init__(self, session_id: str) -> None:
        super().__init__(ErrorCode.REFRESH_TOKEN_REUSED)
        self.session_id = session_id


def _new_token() -> tuple[str, bytes]:
    token = PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return token, _hash(token)


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def well_formed(token: object) -> bool:
    return isinstance(token, str) and _FORMAT.match(token) is not None


async def _insert_token(
    conn: db.Connection, session_id: uuid.UUID, generation: int, ttl: int
) -> str:
    token, digest = _new_token()
    await conn.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, generation, expires_at)"
        " VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        digest,
        session_id,
        generation,
        float(ttl),
    )
    return token


async def start(pool: asyncpg.Pool, player_id: int, ttl: int) -> Issued:
    session_id = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO auth_sessions (session_id, player_id) VALUES ($1, $2)",
            session_id,
            player_id,
        )
        token = await _insert_token(conn, session_id, 0, ttl)
    return Issued(token, str(session_id))


async def rotate(pool: asyncpg.Pool, token: str, ttl: int) -> Rotated:
    """Spend a refresh token for a new one. Raises INVALID_REFRESH_TOKEN, or RefreshReused
    (after revoking the session) when the token was already spent."""
    if not well_formed(token):
        raise GameError(ErrorCode.INVALID_REFRESH_TOKEN, "not a refresh token")
    digest = _hash(token)
    async with pool.acquire() as conn, conn.transaction():
        # Atomic: of two concurrent refreshes with one token, exactly one spends it.
        spent = await conn.fetchrow(
            "UPDATE refresh_tokens SET used_at = now()"
            " WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()"
            " RETURNING session_id, generation",
            digest,
        )
        if spent is not None:
            session = await conn.fetchrow(
                "SELECT s.player_id, s.revoked_at, p.display_name FROM auth_sessions s"
                " JOIN players p ON p.steam_id = s.player_id"
                " WHERE s.session_id = $1 FOR UPDATE OF s",
                spent["session_id"],
            )
            if session is not None and session["revoked_at"] is None:
                await conn.execute(
                    "UPDATE auth_sessions SET last_used_at = now() WHERE session_id = $1",
                    spent["session_id"],
                )
                new = await _insert_token(conn, spent["session_id"], spent["generation"] + 1, ttl)
                return Rotated(
                    Issued(new, str(spent["session_id"])),
                    session["player_id"],
                    session["display_name"],
                )
            raise GameError(ErrorCode.INVALID_REFRESH_TOKEN, "the session was revoked")
        known = await conn.fetchrow(
            "SELECT session_id, used_at FROM refresh_tokens WHERE token_hash = $1", digest
        )
        if known is None:
            raise GameError(ErrorCode.INVALID_REFRESH_TOKEN, "unknown refresh token")
        if known["used_at"] is None:
            raise GameError(ErrorCode.INVALID_REFRESH_TOKEN, "the refresh token has expired")
        await conn.execute(
            "UPDATE auth_sessions SET revoked_at = now(), revoked_reason = 'reuse'"
            " WHERE session_id = $1 AND revoked_at IS NULL",
            known["session_id"],
        )
    raise RefreshReused(str(known["session_id"]))


async def session_of(pool: asyncpg.Pool, token: str) -> str | None:
    """The session a refresh token (used or not) belongs to."""
    if not well_formed(token):
        return None
    found = await pool.fetchval(
        "SELECT session_id FROM refresh_tokens WHERE token_hash = $1", _hash(token)
    )
    return None if found is None else str(found)


async def revoke(pool: asyncpg.Pool, session_id: str, reason: str = "logout") -> bool:
    """Revoke a session; True when it was active until now."""
    try:
        sid = uuid.UUID(session_id)
    except ValueError:
        return False
    status = await pool.execute(
        "UPDATE auth_sessions SET revoked_at = now(), revoked_reason = $2"
        " WHERE session_id = $1 AND revoked_at IS NULL",
        sid,
        reason,
    )
    return status.endswith(" 1")


async def is_active(pool: asyncpg.Pool, session_id: str) -> bool:
    try:
        sid = uuid.UUID(session_id)
    except ValueError:
        return False
    revoked = await pool.fetchrow("SELECT revoked_at FROM auth_sessions WHERE session_id = $1", sid)
    return revoked is not None and revoked["revoked_at"] is None
