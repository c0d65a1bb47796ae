-- Glicko-2 bookkeeping, match history details, and the PvE opponents.

-- When the player last played a Ranked game: their rating deviation grows for every whole
-- rating period since (configured in [rating]); NULL until their first Ranked game.
ALTER TABLE player_profiles ADD COLUMN IF NOT EXISTS rated_at TIMESTAMPTZ;

-- The whole Glicko-2 state before and after a Ranked match (rating_before/after exist since
-- 0001); NULL for unranked modes, where nothing changes.
ALTER TABLE match_participants ADD COLUMN IF NOT EXISTS rd_before DOUBLE PRECISION;
ALTER TABLE match_participants ADD COLUMN IF NOT EXISTS rd_after DOUBLE PRECISION;
ALTER TABLE match_participants ADD COLUMN IF NOT EXISTS volatility_before DOUBLE PRECISION;
ALTER TABLE match_participants ADD COLUMN IF NOT EXISTS volatility_after DOUBLE PRECISION;

-- PvE opponents are players too, so that match history stays uniform (participants and
-- winner reference players). Their ids are far below any SteamID64 (76561197960265728 and up)
-- and they have no profile: recording a PvE match changes nothing of theirs.
INSERT INTO players (steam_id, display_name) VALUES
    (1, 'AI (easy)'),
    (2, 'AI (normal)'),
    (3, 'AI (hard)')
ON CONFLICT (steam_id) DO UPDATE SET display_name = EXCLUDED.display_name;
