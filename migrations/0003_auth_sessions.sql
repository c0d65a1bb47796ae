-- Login sessions: one refresh-token family per login, rotated on every refresh.
-- Kept in PostgreSQL, not Redis: refresh tokens live for weeks and must survive a Redis restart,
-- failover or eviction (Redis here holds queues and caches); refreshes are rare (one per access
-- token lifetime per player), and a row per token gives an audit trail of every rotation.
CREATE TABLE IF NOT EXISTS auth_sessions (
    session_id     UUID PRIMARY KEY,          -- the access token's `sid` claim
    player_id      BIGINT NOT NULL REFERENCES players (steam_id) ON DELETE CASCADE,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at     TIMESTAMPTZ,
    revoked_reason TEXT CHECK (revoked_reason IN ('logout', 'reuse', 'admin'))
);
CREATE INDEX IF NOT EXISTS auth_sessions_player ON auth_sessions (player_id);

-- Every refresh token ever issued, by SHA-256 (the token itself is never stored). A token is
-- used once: presenting a used one again is reuse, and revokes its whole session.
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash  BYTEA PRIMARY KEY,
    session_id  UUID NOT NULL REFERENCES auth_sessions (session_id) ON DELETE CASCADE,
    generation  INT NOT NULL,
    issued_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS refresh_tokens_session ON refresh_tokens (session_id);
