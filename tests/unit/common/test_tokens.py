"""Signing keys and tokens without servers: rotation, algorithms, missing key material."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from servers.common.config import AuthSettings
from servers.common.errors import ErrorCode, GameError
from servers.common.tokens import (
    KeyRing,
    TokenIssuer,
    TokenVerifier,
    parse_jwks,
    write_key,
)
from tests.support.helpers import expect_error


def test_key_rotation(tmp_path: Path) -> None:
    """Old tokens keep verifying while the new key signs; a removed key stops verifying."""
    write_key(tmp_path, "2025-01")
    old = AuthSettings(key_dir=str(tmp_path))
    token_old, _ = TokenIssuer(old).issue("76561197960265729", "a")
    write_key(tmp_path, "2025-02")
    both = AuthSettings(key_dir=str(tmp_path))
    ring = KeyRing.from_settings(both)
    assert ring.signing_kid == "2025-02" and set(ring.keys) == {"2025-01", "2025-02"}
    verifier = TokenVerifier(both, parse_jwks(ring.jwks(), "EdDSA"))
    token_new, _ = TokenIssuer(both, ring).issue("76561197960265729", "a")
    assert jwt.get_unverified_header(token_new)["kid"] == "2025-02"
    assert verifier.verify(token_old).player_id == verifier.verify(token_new).player_id
    pinned = AuthSettings(key_dir=str(tmp_path), signing_kid="2025-01")
    assert KeyRing.from_settings(pinned).signing_kid == "2025-01"
    (tmp_path / "2025-01.pem").unlink()
    after = TokenVerifier(both, KeyRing.from_settings(both).public_keys())
    with expect_error(ErrorCode.UNAUTHORIZED):
        after.verify(token_old)


def test_es256_and_dev_seed_keys() -> None:
    for algorithm in ("EdDSA", "ES256"):
        settings = AuthSettings(jwt_algorithm=algorithm, dev_key_seed="seed")
        token, _ = TokenIssuer(settings).issue("76561197960265729", "a", session_id="s")
        # Another process with the same configuration derives the same key.
        again = TokenVerifier(settings, KeyRing.from_settings(settings).public_keys())
        assert again.verify(token).session_id == "s"
        # An ES256 verifier refuses EdDSA tokens and vice versa (the algorithm is pinned).
        other = "ES256" if algorithm == "EdDSA" else "EdDSA"
        wrong = AuthSettings(jwt_algorithm=other, dev_key_seed="seed")
        with pytest.raises(GameError):
            TokenVerifier(wrong, KeyRing.from_settings(wrong).public_keys()).verify(token)


def test_no_key_material_is_a_startup_error() -> None:
    with pytest.raises(ValueError, match="no signing key"):
        KeyRing.from_settings(AuthSettings())
