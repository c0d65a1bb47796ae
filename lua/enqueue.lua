-- Put a player in a mode's queue with their ticket, if the request comes from the connection
-- that holds the player now (epoch), the player is doing nothing else and matchmaking is not
-- in maintenance.
-- KEYS[1] queue, KEYS[2] tickets, KEYS[3] ticket pods, KEYS[4] inflight, KEYS[5] the player's
-- record, KEYS[6] the maintenance flag, KEYS[7] party members, KEYS[8] parties; one hash
-- slot ({mm})
-- ARGV[1] player id, ARGV[2] score: enqueue time in ms, ARGV[3] ticket JSON,
-- ARGV[4] epoch of the requesting connection, ARGV[5] mode, ARGV[6] "solo" when a member of a
-- live party may not queue for this mode (every mode but the party duel)
-- Returns {status, queue size, pod holding the player, activity, its mode, match id}; status
-- is "queued", "maintenance", "stale" (another connection holds the player, or nobody),
-- "in_party" or "busy" (the player is queued or in a battle: activity, mode and match say
-- where).
local queue_key, tickets_key, pods_key, inflight_key, record =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local player_id, score, ticket, epoch, mode = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]

local held_epoch, pod, act, act_mode, match_id =
    unpack(redis.call('HMGET', record, 'epoch', 'pod', 'act', 'mode', 'match'))
pod = pod or ''
if redis.call('EXISTS', KEYS[6]) == 1 then
    return {'maintenance', redis.call('ZCARD', queue_key), pod, act or 'idle', act_mode or '', ''}
end
if held_epoch ~= epoch or pod == '' then
    return {'stale', redis.call('ZCARD', queue_key), pod, act or 'idle', act_mode or '', ''}
end
if act and act ~= 'idle' then
    return {'busy', redis.call('ZCARD', queue_key), pod, act, act_mode or '', match_id or ''}
end
if redis.call('ZSCORE', queue_key, player_id) or redis.call('ZSCORE', inflight_key, player_id) then
    return {'busy', redis.call('ZCARD', queue_key), pod, 'queued', mode, ''} -- a ticket of this mode
end
if ARGV[6] == 'solo' then
    local code = redis.call('HGET', KEYS[7], player_id)
    local party = code and redis.call('HGET', KEYS[8], code)
    if party then
        party = cjson.decode(party)
        local member = false
        for _, id in ipairs(party.members) do
            member = member or id == player_id
        end
        if member and party.expires_ms > score then -- an expired party counts as none
            return {'in_party', redis.call('ZCARD', queue_key), pod, 'idle', '', ''}
        end
    end
end
redis.call('ZADD', queue_key, score, player_id)
redis.call('HSET', tickets_key, player_id, ticket)
redis.call('HSET', pods_key, player_id, pod)
redis.call('HSET', record, 'act', 'queued', 'mode', mode, 'match', '', 'until', '0')
cg_touch(record)
return {'queued', redis.call('ZCARD', queue_key), pod, 'queued', mode, ''}
