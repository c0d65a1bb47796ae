-- The card catalogue as versioned data: content/cards.toml, loaded by `cardgame content load`
-- (servers/common/content.py). Every distinct content (by its canonical SHA-256) is one
-- immutable version, kept for good with its cards; `cards` (referenced by collections and
-- decks) holds the numbers of the current version, which is the latest activation.

CREATE TABLE IF NOT EXISTS catalogue_versions (
    version      INT PRIMARY KEY CHECK (version >= 1),
    -- SHA-256 (hex) of the canonical JSON of the content: the same cards give the same hash
    -- whatever the file's key order, card order, comments or layout.
    content_hash TEXT NOT NULL UNIQUE,
    loaded_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The file it was loaded from, as given to the command.
    source       TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS catalogue_cards (
    version        INT NOT NULL REFERENCES catalogue_versions (version),
    card_id        INT NOT NULL,
    name           TEXT NOT NULL,
    cost           SMALLINT NOT NULL,
    attack         SMALLINT NOT NULL,
    health         SMALLINT NOT NULL,
    rarity         TEXT NOT NULL,
    starter_copies SMALLINT NOT NULL,
    PRIMARY KEY (version, card_id)
);

-- Which version `cards` holds, and since when: append-only, the newest row is current. Loading
-- a content that an older version already has (a balance change rolled back) makes that
-- version current again instead of creating a copy.
CREATE TABLE IF NOT EXISTS catalogue_activations (
    activation_id BIGSERIAL PRIMARY KEY,
    version       INT NOT NULL REFERENCES catalogue_versions (version),
    activated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    source        TEXT NOT NULL
);
