"""Session tokens (JWT): issued by the auth server, verified by every game server.

The algorithm is pinned (HS256) and issuer, audience and expiry are always checked, so `alg=none`
and tokens minted for another service are refused.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from servers.common.config import AuthSettings
from servers.common.errors import ErrorCode, GameError

ALGORITHM = "HS256"


@dataclass(frozen=True)
class Identity:
    player_id: str  # SteamID64 as a decimal string (JSON numbers lose precision past 2**53)
    name: str
    expires_at: int


class TokenService:
    def __init__(self, settings: AuthSettings) -> None:
        if len(settings.jwt_secret) < 32:
            raise ValueError("auth.jwt_secret must be at least 32 characters")
        self._s = settings

    def issue(self, player_id: str, name: str, now: float | None = None) -> tuple[str, int]:
        issued = int(time.time() if now is None else now)
        expires = issued + self._s.access_token_ttl
        claims = {
            "sub": player_id,
            "name": name,
            "iss": self._s.jwt_issuer,
            "aud": self._s.jwt_audience,
            "iat": issued,
            "exp": expires,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._s.jwt_secret, algorithm=ALGORITHM), expires

    def verify(self, token: str) -> Identity:
        try:
            claims = jwt.decode(
                token,
                self._s.jwt_secret,
                algorithms=[ALGORITHM],
                audience=self._s.jwt_audience,
                issuer=self._s.jwt_issuer,
                options={"require": ["sub", "exp", "iat", "iss", "aud"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise GameError(ErrorCode.TOKEN_EXPIRED) from None
        except jwt.InvalidTokenError as exc:
            raise GameError(ErrorCode.UNAUTHORIZED, f"invalid token: {exc}") from None
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub.isdigit():
            raise GameError(ErrorCode.UNAUTHORIZED, "invalid token: bad subject")
        return Identity(player_id=sub, name=str(claims.get("name", sub)),
                        expires_at=int(claims["exp"]))
