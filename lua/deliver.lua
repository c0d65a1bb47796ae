-- A battle result is about to be sent to its player: note that it was (for ARGV[2] seconds),
-- and clear the player's battle marker if it still names this match (a newer match's marker
-- stays), so that a reconnect does not send it again. One round trip per result.
-- KEYS[1] the delivered flag of (player, match), KEYS[2] the player's battle marker; one hash
-- slot (the player's id)
-- ARGV[1] match id, ARGV[2] ttl in seconds, ARGV[3] "1" to clear the marker even when the
-- result was delivered before (a re-send after the sending pod died)
-- Returns 1 for the first delivery, 0 when it was delivered before.
local first = redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2])
if (first or ARGV[3] == '1') and redis.call('GET', KEYS[2]) == ARGV[1] then
    redis.call('DEL', KEYS[2])
end
if first then
    return 1
end
return 0
