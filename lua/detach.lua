-- The connection that held the player is gone for good (its reconnect grace passed): nobody
-- holds the player now, the epoch moves on (a late request of that connection is refused) and
-- a queued player is taken out of the queue, or out of a pairing under way (the match server's
-- commit then finds them gone and puts their partner back), with a notice for their next
-- welcome. A battle goes on: its result is kept for the reconnect.
-- Nothing changes when another connection took the player meanwhile (the epoch differs).
-- KEYS[1] the player's record, KEYS[2] deadlines, then for each mode: queue, tickets, ticket
-- pods, inflight, inflight scores; one hash slot ({mm})
-- ARGV[1] player id, ARGV[2] the epoch the connection held, then per mode (in the order of
-- their keys): its name and the `dequeued` message to keep for the player
-- Returns {status, mode dequeued or ""}: status "detached" or "stale".
local record, deadlines_key = KEYS[1], KEYS[2]
local player_id, epoch = ARGV[1], ARGV[2]

local held_epoch, act, mode = unpack(redis.call('HMGET', record, 'epoch', 'act', 'mode'))
if held_epoch ~= epoch then
    return {'stale', ''}
end
redis.call('HINCRBY', record, 'epoch', 1)
redis.call('HSET', record, 'pod', '')
cg_touch(record)
if act ~= 'queued' then
    return {'detached', ''}
end
for i = 3, #ARGV, 2 do
    if ARGV[i] == mode then
        local at = 3 + (i - 3) / 2 * 5
        local queue_key, tickets_key, pods_key, inflight_key, scores_key =
            KEYS[at], KEYS[at + 1], KEYS[at + 2], KEYS[at + 3], KEYS[at + 4]
        redis.call('ZREM', inflight_key, player_id)
        redis.call('HDEL', scores_key, player_id)
        cg_drop_ticket(queue_key, tickets_key, pods_key, player_id)
        cg_set_idle(record, deadlines_key, player_id)
        redis.call('HSET', record, 'notice', ARGV[i + 1])
        return {'detached', mode}
    end
end
return {'detached', ''}
