-- A player reconnected to another pod: route their match to the new pod, if still waiting.
-- KEYS[1] queue, KEYS[2] ticket pods, KEYS[3] inflight; one hash slot
-- ARGV[1] player id, ARGV[2] new pod id
-- Returns 1 when the player is queued (or being paired) and now points at the new pod, else 0.
local queue_key, pods_key, inflight_key = KEYS[1], KEYS[2], KEYS[3]
local player_id, pod_id = ARGV[1], ARGV[2]
if redis.call('ZSCORE', queue_key, player_id) or redis.call('ZSCORE', inflight_key, player_id) then
    redis.call('HSET', pods_key, player_id, pod_id)
    return 1
end
return 0
