-- A battle is about to run: mark the player as owed its result (so that a reconnect finds it),
-- unless this result already reached them (a battle re-run after a claim).
-- KEYS[1] the player's battle marker, KEYS[2] the delivered flag of (player, match); one hash
-- slot (the player's id)
-- ARGV[1] match id, ARGV[2] the marker's ttl in seconds
-- Returns 1 when marked, 0 when the result was delivered before.
if redis.call('EXISTS', KEYS[2]) == 1 then
    return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
