-- A battle result is about to be sent to its player: note that it was (for ARGV[2] seconds).
-- The player's battle marker stays until the frame is on its way (lua/clear_marker.lua), so
-- a pod that dies in between leaves it, and the reconnect sends the result again.
-- KEYS[1] the delivered flag of (player, match)
-- ARGV[1] ttl in seconds
-- Returns 1 for the first delivery, 0 when it was delivered before.
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
    return 1
end
return 0
