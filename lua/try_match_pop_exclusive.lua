-- Atomically take a whole queue (up to a limit, longest-waiting first) for pairing by ONE match
-- server at a time: Ranked and Party pair over everyone waiting, so two match servers popping
-- halves of the queue would each see only part of it (worse pairs, or party members split).
-- Refuses (returns {}) while another match server still holds popped players of this queue
-- (in-flight set not empty) or when a pass over this queue ran less than ARGV[3] ms ago (the
-- pass key): however many match servers run, the queue is paired once per interval by one of
-- them, so adding pods changes neither who meets whom nor how often.
-- Popped players move to the in-flight set under a lease exactly as in try_match_pop.lua, so
-- commit_match.lua and reap.lua work unchanged.
-- KEYS[1] queue, KEYS[2] tickets, KEYS[3] ticket pods, KEYS[4] inflight,
-- KEYS[5] inflight scores, KEYS[6] pass key (string with a TTL); one hash slot
-- ARGV[1] most players to pop, ARGV[2] lease deadline (ms), ARGV[3] pass interval (ms, >= 1)
-- Returns a flat array {player id, score, ticket, pod id, ...} (ticket "" = poisoned entry).
local queue_key, tickets_key, pods_key, inflight_key, scores_key, pass_key =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local limit = tonumber(ARGV[1])
local deadline = tonumber(ARGV[2])
local interval = ARGV[3]

if redis.call('ZCARD', inflight_key) > 0 then
    return {}
end
if not redis.call('SET', pass_key, '1', 'NX', 'PX', interval) then
    return {}
end
local count = math.min(limit, redis.call('ZCARD', queue_key))
if count < 2 then
    return {}
end
return cg_lease(redis.call('ZPOPMIN', queue_key, count), inflight_key, scores_key, tickets_key,
    pods_key, deadline)
