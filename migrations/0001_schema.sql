-- Core schema, after the Steam design document: players keyed by SteamID64 (BIGINT).
CREATE TABLE IF NOT EXISTS players (
    steam_id      BIGINT PRIMARY KEY,
    display_name  TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_login_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS player_profiles (
    player_id        BIGINT PRIMARY KEY REFERENCES players (steam_id) ON DELETE CASCADE,
    -- Glicko-2 state (defaults from Glickman's paper).
    rating           DOUBLE PRECISION NOT NULL DEFAULT 1500,
    rating_deviation DOUBLE PRECISION NOT NULL DEFAULT 350,
    volatility       DOUBLE PRECISION NOT NULL DEFAULT 0.06,
    level            INT NOT NULL DEFAULT 1 CHECK (level >= 1),
    experience       BIGINT NOT NULL DEFAULT 0 CHECK (experience >= 0),
    wins             INT NOT NULL DEFAULT 0,
    losses           INT NOT NULL DEFAULT 0,
    draws            INT NOT NULL DEFAULT 0,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS cards (
    card_id        INT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    cost           SMALLINT NOT NULL CHECK (cost BETWEEN 0 AND 10),
    attack         SMALLINT NOT NULL CHECK (attack >= 0),
    health         SMALLINT NOT NULL CHECK (health > 0),
    rarity         TEXT NOT NULL CHECK (rarity IN ('common', 'rare', 'epic', 'legendary')),
    -- Copies every new player receives.
    starter_copies SMALLINT NOT NULL DEFAULT 0 CHECK (starter_copies >= 0)
);

CREATE TABLE IF NOT EXISTS player_card_collection (
    player_id   BIGINT NOT NULL REFERENCES players (steam_id) ON DELETE CASCADE,
    card_id     INT NOT NULL REFERENCES cards (card_id),
    count       SMALLINT NOT NULL CHECK (count > 0),
    acquired_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (player_id, card_id)
);

CREATE TABLE IF NOT EXISTS player_decks (
    deck_id    BIGSERIAL PRIMARY KEY,
    player_id  BIGINT NOT NULL REFERENCES players (steam_id) ON DELETE CASCADE,
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    is_active  BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS player_decks_player ON player_decks (player_id);
-- At most one active deck per player.
CREATE UNIQUE INDEX IF NOT EXISTS player_decks_one_active ON player_decks (player_id) WHERE is_active;

CREATE TABLE IF NOT EXISTS deck_cards (
    deck_id BIGINT NOT NULL REFERENCES player_decks (deck_id) ON DELETE CASCADE,
    card_id INT NOT NULL REFERENCES cards (card_id),
    count   SMALLINT NOT NULL CHECK (count > 0),
    PRIMARY KEY (deck_id, card_id)
);

CREATE TABLE IF NOT EXISTS match_history (
    -- Chosen by the match server when it pairs the players; the primary key makes persisting
    -- a battle idempotent (a redelivered result inserts nothing).
    match_id    UUID PRIMARY KEY,
    mode        TEXT NOT NULL,
    seed        BIGINT NOT NULL,
    winner_id   BIGINT REFERENCES players (steam_id),
    end_reason  TEXT NOT NULL,
    turns       INT NOT NULL,
    -- JSON, not JSONB: keeps the exact bytes the simulation produced (replays compare bytes).
    timeline    JSON NOT NULL,
    pod_id      TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS match_history_finished ON match_history (finished_at DESC);

CREATE TABLE IF NOT EXISTS match_participants (
    match_id      UUID NOT NULL REFERENCES match_history (match_id) ON DELETE CASCADE,
    player_id     BIGINT NOT NULL REFERENCES players (steam_id),
    slot          SMALLINT NOT NULL CHECK (slot IN (1, 2)),
    result        TEXT NOT NULL CHECK (result IN ('win', 'loss', 'draw')),
    rating_before DOUBLE PRECISION NOT NULL,
    rating_after  DOUBLE PRECISION NOT NULL,
    -- The battle snapshot the player queued with: replays re-simulate from it and the seed.
    snapshot      JSONB NOT NULL,
    PRIMARY KEY (match_id, player_id)
);
CREATE INDEX IF NOT EXISTS match_participants_player ON match_participants (player_id, match_id);
