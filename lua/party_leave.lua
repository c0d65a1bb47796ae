-- Leave one's party. The other member stays (as owner) and the party is open again; if that
-- member was queued for the party duel they are taken out of the party queue in the same step
-- (a duel needs both). The last member leaving deletes the party.
-- KEYS[1] parties, KEYS[2] party members, KEYS[3] party expiry, KEYS[4] party queue,
-- KEYS[5] party tickets, KEYS[6] party ticket pods, KEYS[7] deadlines; one hash slot ({mm})
-- ARGV[1] player id, ARGV[2] the records' name prefix (Keys.player_prefix), ARGV[3] party mode,
-- ARGV[4] "unheld" to leave only if nobody holds the player (letting a disconnected player go)
-- ARGV[1] player id
-- Returns {"not_in_party"}, {"held"} (ARGV[4]), {"queued"} (the leaver waits in the party
-- queue: nothing changed)
-- or {"ok", party JSON after ("" if deleted), other member ("" if
-- none), pod of the other member if they were dequeued ("" if not queued)}.
local parties_key, members_key, expiry_key, queue_key, tickets_key, pods_key, deadlines_key =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local player_id, prefix, mode = ARGV[1], ARGV[2], ARGV[3]

local code = redis.call('HGET', members_key, player_id)
if not code then
    return {'not_in_party'}
end
if ARGV[4] == 'unheld' and (redis.call('HGET', prefix .. player_id, 'pod') or '') ~= '' then
    return {'held'} -- letting a player go who reconnected meanwhile: they stay in the party
end
if cg_queued_in(prefix .. player_id, mode) then
    return {'queued'} -- waiting for the duel: dequeue first (a ticket must not outlive its party)
end
redis.call('HDEL', members_key, player_id)
local raw = redis.call('HGET', parties_key, code)
if not raw then
    return {'not_in_party'}
end
local party = cjson.decode(raw)
local rest = {}
for _, member in ipairs(party.members) do
    if member ~= player_id then rest[#rest + 1] = member end
end
if #rest == 0 then
    redis.call('HDEL', parties_key, code)
    redis.call('ZREM', expiry_key, code)
    return {'ok', '', '', ''}
end
party.members = rest
party.owner = rest[1]
raw = cjson.encode(party)
redis.call('HSET', parties_key, code, raw)
local other = rest[1]
local other_pod = ''
if redis.call('ZSCORE', queue_key, other) then
    other_pod = redis.call('HGET', prefix .. other, 'pod') or ''
    cg_drop_ticket(queue_key, tickets_key, pods_key, other)
    if cg_queued_in(prefix .. other, mode) then
        cg_set_idle(prefix .. other, deadlines_key, other)
    end
end
return {'ok', raw, other, other_pod}
