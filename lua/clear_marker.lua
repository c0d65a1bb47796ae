-- A battle result went out to its player: clear their battle marker if it still names this
-- match (a newer match's marker, or none, stays as it is).
-- KEYS[1] the player's battle marker
-- ARGV[1] match id
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('DEL', KEYS[1])
end
return 0
