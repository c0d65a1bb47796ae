-- The battle engine version a match was played with (servers/game/battle/engines.py): its
-- replay re-runs those rules even after they changed. Matches recorded before have version 1.
ALTER TABLE match_history ADD COLUMN IF NOT EXISTS engine_version SMALLINT NOT NULL DEFAULT 1;
