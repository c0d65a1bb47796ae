-- 0006_match_partitions.sql: match_history and match_participants partitioned by month, so
-- that old matches go by dropping whole partitions (`cardgame db prune`), never by DELETE.
--
-- Partition key: `formed_at`, the time the match server formed the match (the PvE start for
-- PvE), carried in the battle request. It is the same for every run of one battle, so the
-- primary keys (which must contain it) still make recording idempotent: a re-run hits the
-- same partition and the same key. Rows recorded before this migration take their
-- `started_at` as `formed_at`.
--
-- Months are UTC calendar months: match_history_pYYYYMM holds
-- [YYYY-MM-01 00:00 UTC, first day of the next month). The DEFAULT partitions catch a row
-- whose month has no partition yet, so recording never fails for want of one;
-- match_partitions_create moves such rows into the month's partition when it creates it.
--
-- match_participants keeps its foreign keys: to players, and to its match through
-- (match_id, formed_at), the partitioned primary key of match_history. Both tables share the
-- key and the bounds, so a month's participants sit in the month's participants partition;
-- prune drops that one first, then detaches and drops the history partition.
--
-- Columns are copied with LIKE, so columns other migrations added before this one come along.

CREATE TABLE match_history_part (
    LIKE match_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE,
    formed_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT match_history_part_pkey PRIMARY KEY (match_id, formed_at),
    CONSTRAINT match_history_part_winner_fkey FOREIGN KEY (winner_id) REFERENCES players (steam_id)
) PARTITION BY RANGE (formed_at);

CREATE TABLE match_participants_part (
    LIKE match_participants INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE,
    formed_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT match_participants_part_pkey PRIMARY KEY (match_id, player_id, formed_at)
) PARTITION BY RANGE (formed_at);

CREATE TABLE match_history_part_default PARTITION OF match_history_part DEFAULT;
CREATE TABLE match_participants_part_default PARTITION OF match_participants_part DEFAULT;

-- The existing rows, into the default partitions first; the month partitions are then created
-- (below) by the same function the servers use, which moves each month's rows out of DEFAULT.
INSERT INTO match_history_part SELECT h.*, h.started_at FROM match_history h;
INSERT INTO match_participants_part
SELECT m.*, h.started_at FROM match_participants m JOIN match_history h USING (match_id);

DROP TABLE match_participants;
DROP TABLE match_history;

ALTER TABLE match_history_part RENAME TO match_history;
ALTER TABLE match_history RENAME CONSTRAINT match_history_part_pkey TO match_history_pkey;
ALTER TABLE match_history RENAME CONSTRAINT match_history_part_winner_fkey
    TO match_history_winner_id_fkey;
ALTER TABLE match_history_part_default RENAME TO match_history_default;
ALTER TABLE match_participants_part RENAME TO match_participants;
ALTER TABLE match_participants RENAME CONSTRAINT match_participants_part_pkey
    TO match_participants_pkey;
ALTER TABLE match_participants_part_default RENAME TO match_participants_default;

ALTER TABLE match_participants
    ADD CONSTRAINT match_participants_match_fkey FOREIGN KEY (match_id, formed_at)
        REFERENCES match_history (match_id, formed_at) ON DELETE CASCADE,
    ADD CONSTRAINT match_participants_player_id_fkey FOREIGN KEY (player_id)
        REFERENCES players (steam_id);

-- Lookups by match id alone (replay, the result for a reconnecting player) probe each
-- partition's primary key, which leads with match_id; a player's history uses this one.
CREATE INDEX match_history_finished ON match_history (finished_at DESC);
CREATE INDEX match_participants_player ON match_participants (player_id, match_id);

-- Creates the partitions of both tables for the UTC month containing `month_start` unless they
-- exist; rows of that month found in the DEFAULT partitions move into them. Returns true when
-- it created them. The callers serialise it (an advisory lock, see servers/common/retention.py).
CREATE OR REPLACE FUNCTION match_partitions_create(month_start TIMESTAMPTZ) RETURNS BOOLEAN
LANGUAGE plpgsql AS $fn$
DECLARE
    lo_local TIMESTAMP := date_trunc('month', month_start AT TIME ZONE 'UTC');
    lo TIMESTAMPTZ := lo_local AT TIME ZONE 'UTC';
    hi TIMESTAMPTZ := (lo_local + INTERVAL '1 month') AT TIME ZONE 'UTC';
    suffix TEXT := to_char(lo_local, 'YYYYMM');
    history_part TEXT := 'match_history_p' || suffix;
    participants_part TEXT := 'match_participants_p' || suffix;
    bounds TEXT := format(
        'FOR VALUES FROM (%L) TO (%L)',
        to_char(lo_local, 'YYYY-MM-DD') || ' 00:00:00+00',
        to_char(lo_local + INTERVAL '1 month', 'YYYY-MM-DD') || ' 00:00:00+00'
    );
BEGIN
    IF to_regclass(history_part) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Built as plain tables, filled from DEFAULT, then attached: attaching locks the parent
    -- less than CREATE TABLE ... PARTITION OF (recording goes on meanwhile).
    EXECUTE format('CREATE TABLE %I (LIKE match_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS'
                   ' INCLUDING STORAGE)', history_part);
    EXECUTE format('CREATE TABLE %I (LIKE match_participants INCLUDING DEFAULTS'
                   ' INCLUDING CONSTRAINTS INCLUDING STORAGE)', participants_part);
    -- Participants first: deleting their matches from DEFAULT then cascades to nothing.
    EXECUTE format('INSERT INTO %I SELECT * FROM match_participants_default'
                   ' WHERE formed_at >= $1 AND formed_at < $2', participants_part) USING lo, hi;
    DELETE FROM match_participants_default WHERE formed_at >= lo AND formed_at < hi;
    EXECUTE format('INSERT INTO %I SELECT * FROM match_history_default'
                   ' WHERE formed_at >= $1 AND formed_at < $2', history_part) USING lo, hi;
    DELETE FROM match_history_default WHERE formed_at >= lo AND formed_at < hi;
    EXECUTE format('ALTER TABLE match_history ATTACH PARTITION %I %s', history_part, bounds);
    EXECUTE format('ALTER TABLE match_participants ATTACH PARTITION %I %s',
                   participants_part, bounds);
    RETURN true;
END;
$fn$;

-- The months present, this month and the next.
SELECT match_partitions_create(m)
FROM (
    SELECT DISTINCT date_trunc('month', formed_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS m
    FROM match_history
    UNION
    SELECT now()
    UNION
    SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') + INTERVAL '1 month') AT TIME ZONE 'UTC'
) months
ORDER BY m;
