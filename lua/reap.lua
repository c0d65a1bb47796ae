-- Put popped players whose lease ran out (their match server died mid-tick) back in the queue
-- with their original enqueue time.
-- KEYS[1] queue, KEYS[2] inflight, KEYS[3] inflight scores; one hash slot
-- ARGV[1] now (ms), ARGV[2] most players to reap
-- Returns the number of players put back.
local queue_key, inflight_key, scores_key = KEYS[1], KEYS[2], KEYS[3]
local expired = redis.call('ZRANGEBYSCORE', inflight_key, '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, player_id in ipairs(expired) do
    local score = redis.call('HGET', scores_key, player_id)
    if score then
        redis.call('ZADD', queue_key, score, player_id)
    end
    redis.call('ZREM', inflight_key, player_id)
    redis.call('HDEL', scores_key, player_id)
end
return #expired
