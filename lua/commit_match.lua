-- Finish a TryMatch: hand each pair to the battle stream, requeue leftovers, drop poisoned
-- entries, all in one step, so a pair is either in the stream or (after its lease) back in the
-- queue, never both and never neither.
-- KEYS[1] queue, KEYS[2] tickets, KEYS[3] ticket pods, KEYS[4] inflight,
-- KEYS[5] inflight scores, KEYS[6] battle stream; one hash slot
-- ARGV[1] number of pairs P, ARGV[2] number of leftovers L, ARGV[3] number of dropped D,
-- ARGV[4] stream max length (approximate)
-- then P times: match id, player 1, player 2, BattleRequest JSON
-- then L player ids (back to the queue with their original score), then D player ids (dropped).
-- Returns the match ids that were committed; a pair is skipped when a player's lease already
-- ran out and reap.lua put them back (the other player is then requeued too).
local queue_key, tickets_key, pods_key, inflight_key, scores_key, stream_key =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local pairs_n, left_n, drop_n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local maxlen = ARGV[4]

local function held(player_id)
    return redis.call('ZSCORE', inflight_key, player_id) ~= false
end

local function forget(player_id)
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

local committed = {}
local at = 5
for _ = 1, pairs_n do
    local match_id, one, two, request = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
    at = at + 4
    local one_held, two_held = held(one), held(two)
    if one_held and two_held then
        redis.call('XADD', stream_key, 'MAXLEN', '~', maxlen, '*', 'm', request)
        forget(one)
        forget(two)
        committed[#committed + 1] = match_id
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
    forget(ARGV[at])
    at = at + 1
end
return committed
