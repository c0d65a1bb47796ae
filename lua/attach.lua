-- A connection takes the player: a new epoch (which fences off every older connection's
-- requests), this pod as the holder, and where the player stands, to resume from.
-- KEYS[1] the player's record, KEYS[2] deadlines, then for each mode: queue, inflight,
-- ticket pods; one hash slot ({mm})
-- ARGV[1] player id, ARGV[2] pod id, ARGV[3] now (ms), then the modes' names in the order of
-- their keys
-- A queued player's ticket is repointed to this pod; a battle past its deadline ends here
-- (the match servers end it too, see overdue.lua); a record saying "queued" without a ticket
-- (none should exist) is corrected to idle. The kept notice is handed over and removed.
-- Returns {epoch, previous pod, activity, mode, match id, notice}.
local record, deadlines_key = KEYS[1], KEYS[2]
local player_id, pod, now = ARGV[1], ARGV[2], tonumber(ARGV[3])

local epoch = redis.call('HINCRBY', record, 'epoch', 1)
local previous, act, mode, match_id, deadline, notice =
    unpack(redis.call('HMGET', record, 'pod', 'act', 'mode', 'match', 'until', 'notice'))
redis.call('HSET', record, 'pod', pod)
redis.call('HDEL', record, 'notice')
cg_touch(record)
act = act or 'idle'
if (act == 'battle' or act == 'pve') and tonumber(deadline or '0') <= now then
    cg_set_idle(record, deadlines_key, player_id)
    act = 'idle'
end
if act == 'queued' then
    local waiting = false
    for i = 4, #ARGV do
        if ARGV[i] == mode then
            local at = 3 + (i - 4) * 3
            local queue_key, inflight_key, pods_key = KEYS[at], KEYS[at + 1], KEYS[at + 2]
            if redis.call('ZSCORE', queue_key, player_id) or redis.call('ZSCORE', inflight_key, player_id) then
                redis.call('HSET', pods_key, player_id, pod)
                waiting = true
            end
        end
    end
    if not waiting then
        cg_set_idle(record, deadlines_key, player_id)
        act = 'idle'
    end
end
if act == 'idle' then
    mode, match_id = '', ''
end
return {epoch, previous or '', act, mode or '', match_id or '', notice or ''}
