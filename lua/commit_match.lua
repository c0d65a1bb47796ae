-- Finish a TryMatch: hand each pair to the battle stream, requeue leftovers, drop poisoned
-- entries, all in one step, so a pair is either in the stream or (after its lease) back in the
-- queue, never both and never neither. Both players' records move to "battle" in the same step,
-- with a deadline, so a battle that never ends cannot keep them busy for ever.
-- KEYS[1] queue, KEYS[2] tickets, KEYS[3] ticket pods, KEYS[4] inflight,
-- KEYS[5] inflight scores, KEYS[6] battle stream, KEYS[7] deadlines; one hash slot ({mm})
-- ARGV[1] number of pairs P, ARGV[2] number of leftovers L, ARGV[3] number of dropped D,
-- ARGV[4] stream max length (approximate), ARGV[5] the records' name prefix (Keys.player_prefix:
-- the records are in the same slot), ARGV[6] the battles' deadline (ms), ARGV[7] mode
-- then P times: match id, player 1, player 2, BattleRequest JSON
-- then L player ids (back to the queue with their original score), then D player ids (dropped:
-- their records go idle).
-- Returns a flat array {match id, pod holding player 1, pod holding player 2, ...} of the pairs
-- committed (the pods from the records: a player may have reconnected elsewhere while being
-- paired; "" = nobody holds them); a pair is skipped when a player's lease already ran out and
-- reap.lua put them back (the other player is then requeued too).
local queue_key, tickets_key, pods_key, inflight_key, scores_key, stream_key, deadlines_key =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local pairs_n, left_n, drop_n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local maxlen, prefix, deadline, mode = ARGV[4], ARGV[5], ARGV[6], ARGV[7]

local function held(player_id)
    return redis.call('ZSCORE', inflight_key, player_id) ~= false
end

local function forget(player_id) -- popped: no longer in the queue itself
    redis.call('ZREM', inflight_key, player_id)
    redis.call('HDEL', scores_key, player_id)
    redis.call('HDEL', tickets_key, player_id)
    redis.call('HDEL', pods_key, player_id)
end

local function requeue(player_id)
    local score = redis.call('HGET', scores_key, player_id)
    if score then
        redis.call('ZADD', queue_key, score, player_id)
    end
    redis.call('ZREM', inflight_key, player_id)
    redis.call('HDEL', scores_key, player_id)
end

-- The record exists (enqueue.lua needs it) and keeps its TTL: no EXPIRE on this hot path.
local function start_battle(player_id, match_id)
    redis.call('HSET', prefix .. player_id, 'act', 'battle', 'mode', mode, 'match', match_id,
        'until', deadline)
    redis.call('ZADD', deadlines_key, deadline, player_id)
end

local committed = {}
local at = 8
for _ = 1, pairs_n do
    local match_id, one, two, request = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
    at = at + 4
    local one_held, two_held = held(one), held(two)
    if one_held and two_held then
        redis.call('XADD', stream_key, 'MAXLEN', '~', maxlen, '*', 'm', request)
        forget(one)
        forget(two)
        start_battle(one, match_id)
        start_battle(two, match_id)
        committed[#committed + 1] = match_id
        committed[#committed + 1] = redis.call('HGET', prefix .. one, 'pod') or ''
        committed[#committed + 1] = redis.call('HGET', prefix .. two, 'pod') or ''
    else
        if one_held then requeue(one) end
        if two_held then requeue(two) end
    end
end
for _ = 1, left_n do
    if held(ARGV[at]) then requeue(ARGV[at]) end
    at = at + 1
end
for _ = 1, drop_n do
    local player_id = ARGV[at]
    forget(player_id)
    if cg_queued_in(prefix .. player_id, mode) then
        cg_set_idle(prefix .. player_id, deadlines_key, player_id)
    end
    at = at + 1
end
return committed
