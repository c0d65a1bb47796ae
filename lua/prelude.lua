-- Shared blocks of the matchmaking and player-state scripts. servers/common/lua.py puts this
-- text before each of those scripts when it registers them (Redis 6.2, the bundled server,
-- has no Functions to share code between scripts), so each block is written once.
--
-- A player's record (Keys.player) is a hash, the one truth of what the player is doing:
--   epoch  fencing token, +1 on every attach and detach: a request carries the epoch of the
--          connection it came from and is refused once another connection took the player
--   pod    pod whose game server holds the player's session ("" = nobody)
--   act    idle | queued | battle | pve
--   mode   the queue mode (queued) or game mode (battle, pve)
--   match  the match id (battle, pve)
--   until  deadline in ms of a battle or PvE activity, also in the deadlines sorted set
--   notice a `dequeued` message for the next welcome (dequeued while nobody held the player)
-- Every script that writes a record lives in the `{mm}` slot together with the queues.

local CG_RECORD_TTL = 86400 -- records of players who never come back expire

local function cg_touch(record)
    redis.call('EXPIRE', record, CG_RECORD_TTL)
end

-- The player's activity ended (or never started): idle, and off the deadline index.
local function cg_set_idle(record, deadlines_key, player_id)
    redis.call('HSET', record, 'act', 'idle', 'mode', '', 'match', '', 'until', '0')
    redis.call('ZREM', deadlines_key, player_id)
    cg_touch(record)
end

-- The player is queued when the record says so for this mode (not any other activity).
local function cg_queued_in(record, mode)
    local act, queued_mode = unpack(redis.call('HMGET', record, 'act', 'mode'))
    return act == 'queued' and queued_mode == mode
end

-- Take a player's ticket out of a mode's queue.
local function cg_drop_ticket(queue_key, tickets_key, pods_key, player_id)
    redis.call('ZREM', queue_key, player_id)
    redis.call('HDEL', tickets_key, player_id)
    redis.call('HDEL', pods_key, player_id)
end

-- Move popped players (a ZPOPMIN reply) to the in-flight set under a lease; returns a flat
-- array {player id, score, ticket, pod id, ...} (ticket "" when missing: a poisoned entry).
local function cg_lease(popped, inflight_key, scores_key, tickets_key, pods_key, deadline)
    local out = {}
    for i = 1, #popped, 2 do
        local player_id, score = popped[i], popped[i + 1]
        redis.call('ZADD', inflight_key, deadline, player_id)
        redis.call('HSET', scores_key, player_id, score)
        out[#out + 1] = player_id
        out[#out + 1] = score
        out[#out + 1] = redis.call('HGET', tickets_key, player_id) or ''
        out[#out + 1] = redis.call('HGET', pods_key, player_id) or ''
    end
    return out
end
