-- Take a player out of a mode's queue and drop their ticket.
-- KEYS[1] queue, KEYS[2] tickets, KEYS[3] ticket pods, KEYS[4] the player's record,
-- KEYS[5] deadlines, KEYS[6] inflight; one hash slot ({mm})
-- ARGV[1] player id
-- ARGV[2] epoch the record must hold, or "" for any: a connection's request passes its own,
--         so a connection that was replaced (the player reconnected) dequeues nothing
-- ARGV[3] pod that must hold the player, or "" for any (the watchdog, for a dead pod)
-- ARGV[4] a `dequeued` message to keep for the player's next welcome, or "" for none
-- Returns {status, queue size}: "removed", "not_queued" (in no queue of this mode), "pairing"
-- (being paired right now: matched in a moment, or back in the queue when the lease ends),
-- "stale" (the fence did not match: nothing changed), or {"busy", queue size, activity, mode,
-- match id} (in a battle already).
local queue_key, tickets_key, pods_key, record, deadlines_key, inflight_key =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local player_id, epoch, only_pod, notice = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local held_epoch, pod = unpack(redis.call('HMGET', record, 'epoch', 'pod'))
if (epoch ~= '' and held_epoch ~= epoch) or (only_pod ~= '' and (pod or '') ~= only_pod) then
    return {'stale', redis.call('ZCARD', queue_key)}
end
if not redis.call('ZSCORE', queue_key, player_id) then
    local act, mode, match_id = unpack(redis.call('HMGET', record, 'act', 'mode', 'match'))
    if act == 'battle' or act == 'pve' then -- matched already: the answer says which battle
        return {'busy', redis.call('ZCARD', queue_key), act, mode or '', match_id or ''}
    end
    local status = redis.call('ZSCORE', inflight_key, player_id) and 'pairing' or 'not_queued'
    return {status, redis.call('ZCARD', queue_key)}
end
cg_drop_ticket(queue_key, tickets_key, pods_key, player_id)
cg_set_idle(record, deadlines_key, player_id)
if notice ~= '' then
    redis.call('HSET', record, 'notice', notice)
end
return {'removed', redis.call('ZCARD', queue_key)}
