-- Inputs-only match records: a new match stores what re-simulating it needs (seed,
-- engine_version, each participant's snapshot by reference to a catalogue version, in
-- `snapshot_ref`) and its outcome, not its timeline nor its cards' numbers. Replays and results
-- for reconnecting players re-simulate it (servers/game/persistence.py). Matches recorded
-- before keep their timeline and full `snapshot` and are served from them as before.
ALTER TABLE match_history ALTER COLUMN timeline DROP NOT NULL;
ALTER TABLE match_participants ALTER COLUMN snapshot DROP NOT NULL;
-- JSON, not JSONB: the text msgspec wrote, far smaller than JSONB's numerics for a deck.
ALTER TABLE match_participants ADD COLUMN IF NOT EXISTS snapshot_ref JSON;
ALTER TABLE match_participants ADD CONSTRAINT match_participants_one_snapshot
    CHECK ((snapshot IS NULL) <> (snapshot_ref IS NULL));
