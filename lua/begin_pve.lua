-- Start a PvE battle for a player who is doing nothing else, if the request comes from the
-- connection that holds the player now.
-- KEYS[1] the player's record, KEYS[2] deadlines; one hash slot ({mm})
-- ARGV[1] player id, ARGV[2] epoch of the requesting connection, ARGV[3] match id,
-- ARGV[4] deadline (ms), ARGV[5] game mode recorded ("pve")
-- Returns {status, activity, mode, match id}: "started", "stale" or "busy" (activity, mode and
-- match say where).
local record, deadlines_key = KEYS[1], KEYS[2]
local player_id, epoch, match_id, deadline, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local held_epoch, pod, act, act_mode, held_match =
    unpack(redis.call('HMGET', record, 'epoch', 'pod', 'act', 'mode', 'match'))
if held_epoch ~= epoch or (pod or '') == '' then
    return {'stale', act or 'idle', act_mode or '', ''}
end
if act and act ~= 'idle' then
    return {'busy', act, act_mode or '', held_match or ''}
end
redis.call('HSET', record, 'act', 'pve', 'mode', mode, 'match', match_id, 'until', deadline)
redis.call('ZADD', deadlines_key, deadline, player_id)
cg_touch(record)
return {'started', 'pve', mode, match_id}
