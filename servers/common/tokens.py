"""Session tokens (JWT): signed by the auth server, verified by every game server.

Signing is asymmetric (EdDSA/Ed25519 by default, or ES256): the auth server holds the private
keys, each under a key id (`kid`); game servers hold only public keys, which they fetch from the
auth server's JWKS endpoint (`/.well-known/jwks.json`) or derive from the same configuration.
Rotation: add a key (it is published at once), switch `signing_kid` to it, and delete the old key
once the last token it signed has expired.

Verification pins the algorithm (no `none`, no HS256-with-the-public-key confusion), requires a
known `kid`, and always checks issuer, audience and expiry.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from servers.common.config import AuthSettings
from servers.common.errors import ErrorCode, GameError

log = logging.getLogger("cardgame.tokens")

ALGORITHMS = ("EdDSA", "ES256")
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
LEEWAY = 5  # seconds of clock skew tolerated between auth and game servers
# Least time between two JWKS fetches caused by unknown key ids (a token with a random kid must
# not turn every connect into a request to the auth server).
JWKS_MIN_REFETCH = 2.0


@dataclass(frozen=True)
class Identity:
    player_id: str  # SteamID64 as a decimal string (JSON numbers lose precision past 2**53)
    name: str
    expires_at: int
    session_id: str | None = None  # the refresh-token family (`sid`); logout revokes it


# ---------------------------------------------------------------- key material
def generate_key(algorithm: str = "EdDSA") -> PrivateKey:
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unsupported JWT algorithm {algorithm!r}; use one of {ALGORITHMS}")


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_key(directory: Path, kid: str, algorithm: str = "EdDSA") -> Path:
    """Create a new private key file `<kid>.pem` (mode 0600) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{kid}.pem"
    path.write_bytes(private_pem(generate_key(algorithm)))
    path.chmod(0o600)
    return path


def _derive_dev_key(seed: str, algorithm: str) -> PrivateKey:
    digest = hashlib.sha256(f"cardgame-dev-key:{seed}".encode()).digest()
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.from_private_bytes(digest)
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256 n
    return ec.derive_private_key(int.from_bytes(digest, "big") % (order - 1) + 1, ec.SECP256R1())


def _private_key(key: object, algorithm: str, where: str) -> PrivateKey:
    """`key` if it is a private key for `algorithm`, else ValueError."""
    if algorithm == "EdDSA" and isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if (
        algorithm != "EdDSA"
        and isinstance(key, ec.EllipticCurvePrivateKey)
        and key.curve.name == "secp256r1"
    ):
        return key
    raise ValueError(f"{where}: not a key for {algorithm}")


def public_jwk(kid: str, key: PublicKey, algorithm: str) -> dict[str, Any]:
    raw = (
        OKPAlgorithm.to_jwk(key, as_dict=True)
        if isinstance(key, ed25519.Ed25519PublicKey)
        else ECAlgorithm.to_jwk(key, as_dict=True)
    )
    return {**raw, "kid": kid, "alg": algorithm, "use": "sig"}


class KeyRing:
    """The auth server's private keys by kid, and which one signs."""

    def __init__(self, keys: Mapping[str, PrivateKey], signing_kid: str, algorithm: str) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unsupported JWT algorithm {algorithm!r}; use one of {ALGORITHMS}")
        if signing_kid not in keys:
            raise ValueError(f"signing key id {signing_kid!r} not among {sorted(keys)}")
        self.keys = dict(keys)
        self.signing_kid = signing_kid
        self.algorithm = algorithm

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> KeyRing:
        algorithm = settings.jwt_algorithm
        keys: dict[str, PrivateKey] = {}
        if settings.key_dir:
            directory = Path(settings.key_dir)
            for path in sorted(directory.glob("*.pem")):
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
                keys[path.stem] = _private_key(key, algorithm, str(path))
            if not keys:
                raise ValueError(f"auth.key_dir {directory} holds no *.pem private key")
        elif settings.dev_key_seed:
            key = _derive_dev_key(settings.dev_key_seed, algorithm)
            keys["dev-" + hashlib.sha256(private_pem(key)).hexdigest()[:8]] = key
        else:
            raise ValueError(
                "no signing key: set auth.key_dir (production) or"
                " auth.dev_key_seed (development only)"
            )
        return cls(keys, settings.signing_kid or sorted(keys)[-1], algorithm)

    def public_keys(self) -> dict[str, PublicKey]:
        return {kid: key.public_key() for kid, key in self.keys.items()}

    def jwks(self) -> dict[str, Any]:
        return {
            "keys": [
                public_jwk(kid, key, self.algorithm)
                for kid, key in sorted(self.public_keys().items())
            ]
        }


# ---------------------------------------------------------------- issuing
class TokenIssuer:
    def __init__(self, settings: AuthSettings, keyring: KeyRing | None = None) -> None:
        self._s = settings
        self.keyring = keyring or KeyRing.from_settings(settings)

    def issue(
        self,
        player_id: str,
        name: str,
        now: float | None = None,
        session_id: str | None = None,
        ttl: int | None = None,
    ) -> tuple[str, int]:
        issued = int(time.time() if now is None else now)
        expires = issued + (self._s.access_token_ttl if ttl is None else ttl)
        claims: dict[str, Any] = {
            "sub": player_id,
            "name": name,
            "iss": self._s.jwt_issuer,
            "aud": self._s.jwt_audience,
            "iat": issued,
            "nbf": issued,
            "exp": expires,
            "jti": uuid.uuid4().hex,
        }
        if session_id is not None:
            claims["sid"] = session_id
        ring = self.keyring
        token = jwt.encode(
            claims,
            ring.keys[ring.signing_kid],
            algorithm=ring.algorithm,
            headers={"kid": ring.signing_kid},
        )
        return token, expires


# ---------------------------------------------------------------- verifying
class TokenVerifier:
    """Checks tokens against a set of public keys by kid (kept up to date by a JwksCache)."""

    def __init__(self, settings: AuthSettings, public_keys: Mapping[str, PublicKey]) -> None:
        if settings.jwt_algorithm not in ALGORITHMS:
            raise ValueError(f"unsupported JWT algorithm {settings.jwt_algorithm!r}")
        self._s = settings
        self.keys: dict[str, PublicKey] = dict(public_keys)

    def key_id(self, token: str) -> str:
        """The token's kid, after checking the header names the pinned algorithm."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise GameError(ErrorCode.UNAUTHORIZED, f"invalid token: {exc}") from None
        if header.get("alg") != self._s.jwt_algorithm:
            raise GameError(
                ErrorCode.UNAUTHORIZED,
                f"invalid token: algorithm {header.get('alg')!r} is not accepted",
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise GameError(ErrorCode.UNAUTHORIZED, "invalid token: no key id")
        return kid

    def verify(self, token: str) -> Identity:
        kid = self.key_id(token)
        key = self.keys.get(kid)
        if key is None:
            raise GameError(ErrorCode.UNAUTHORIZED, f"invalid token: unknown key id {kid[:40]!r}")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[self._s.jwt_algorithm],
                audience=self._s.jwt_audience,
                issuer=self._s.jwt_issuer,
                options={"require": ["sub", "exp", "iat", "iss", "aud"]},
                leeway=LEEWAY,
            )
        except jwt.ExpiredSignatureError:
            raise GameError(ErrorCode.TOKEN_EXPIRED) from None
        except jwt.InvalidTokenError as exc:
            raise GameError(ErrorCode.UNAUTHORIZED, f"invalid token: {exc}") from None
        sub, sid = claims["sub"], claims.get("sid")
        if not isinstance(sub, str) or not sub.isdigit():
            raise GameError(ErrorCode.UNAUTHORIZED, "invalid token: bad subject")
        if sid is not None and not isinstance(sid, str):
            raise GameError(ErrorCode.UNAUTHORIZED, "invalid token: bad session id")
        return Identity(
            player_id=sub,
            name=str(claims.get("name", sub)),
            expires_at=int(claims["exp"]),
            session_id=sid,
        )


def parse_jwks(document: Any, algorithm: str) -> dict[str, PublicKey]:
    """Public keys by kid from a JWKS document; keys for another algorithm are skipped."""
    keys: dict[str, PublicKey] = {}
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("a JWKS document is an object with a `keys` array")
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("alg", algorithm) != algorithm:
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str):
            continue
        parser = OKPAlgorithm if algorithm == "EdDSA" else ECAlgorithm
        key = parser.from_jwk(json.dumps(entry))
        if isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
            keys[kid] = key
    return keys


class JwksCache:
    """A game server's view of the auth server's JWKS: fetched lazily, refreshed after
    `refresh_interval`, refetched (at most every JWKS_MIN_REFETCH s) when a token names an
    unknown kid, and kept as it was when the auth server cannot be reached."""

    def __init__(self, settings: AuthSettings, url: str) -> None:
        self.url = url
        self.verifier = TokenVerifier(settings, {})
        self._s = settings
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def refresh(self, force: bool = False) -> None:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if age < JWKS_MIN_REFETCH or (not force and age < self._s.jwks_refresh_interval):
                return
            self._fetched_at = time.monotonic()
            try:
                async with httpx.AsyncClient(timeout=3.0) as http:
                    response = await http.get(self.url)
                    response.raise_for_status()
                    keys = parse_jwks(response.json(), self._s.jwt_algorithm)
            except (httpx.HTTPError, ValueError) as exc:
                log.warning(
                    "JWKS fetch from %s failed (keeping %d keys): %s",
                    self.url,
                    len(self.verifier.keys),
                    exc,
                )
                return
            self.fetches += 1
            self.verifier.keys = keys

    async def verify(self, token: str) -> Identity:
        kid = self.verifier.key_id(token)
        await self.refresh(force=kid not in self.verifier.keys)
        return self.verifier.verify(token)


class LocalKeys:
    """Verification from local key material (a game server configured with the key directory
    or, in development, the seed); for single-machine setups and tests."""

    def __init__(self, settings: AuthSettings) -> None:
        self.verifier = TokenVerifier(settings, KeyRing.from_settings(settings).public_keys())

    async def verify(self, token: str) -> Identity:
        return self.verifier.verify(token)


def verifier_for(settings: AuthSettings) -> JwksCache | LocalKeys:
    """What a game server verifies with: the JWKS endpoint when configured, else local keys."""
    return JwksCache(settings, settings.jwks_url) if settings.jwks_url else LocalKeys(settings)


class TokenService:
    """Issue and verify with one key ring (the auth server, and tests that mint tokens)."""

    def __init__(self, settings: AuthSettings) -> None:
        self.issuer = TokenIssuer(settings)
        self.verifier = TokenVerifier(settings, self.issuer.keyring.public_keys())

    def issue(
        self, player_id: str, name: str, now: float | None = None, session_id: str | None = None
    ) -> tuple[str, int]:
        return self.issuer.issue(player_id, name, now, session_id)

    def verify(self, token: str) -> Identity:
        return self.verifier.verify(token)
