-- Ticket lifetime: take out of a queue every player who has waited longer than the maximum.
-- Players being paired (in flight) are not touched: their lease decides.
-- KEYS[1] queue, KEYS[2] tickets, KEYS[3] ticket pods; one hash slot
-- ARGV[1] cutoff: enqueue time (ms) at or before which a ticket has expired
-- ARGV[2] most players to expire in this call
-- Returns a flat array {player id, pod id, ...} of the players removed (to tell them why).
local queue_key, tickets_key, pods_key = KEYS[1], KEYS[2], KEYS[3]
local expired = redis.call('ZRANGEBYSCORE', queue_key, '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, player_id in ipairs(expired) do
    out[#out + 1] = player_id
    out[#out + 1] = redis.call('HGET', pods_key, player_id) or ''
    redis.call('ZREM', queue_key, player_id)
    redis.call('HDEL', tickets_key, player_id)
    redis.call('HDEL', pods_key, player_id)
end
return out
