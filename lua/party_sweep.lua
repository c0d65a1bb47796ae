-- Remove expired parties: the party, its members' pointers, and any member still waiting in
-- the party queue (a party duel can no longer start).
-- KEYS[1] parties, KEYS[2] party members, KEYS[3] party expiry, KEYS[4] party queue,
-- KEYS[5] party tickets, KEYS[6] party ticket pods, KEYS[7] deadlines; one hash slot ({mm})
-- ARGV[1] now (ms), ARGV[2] most parties per call, ARGV[3] the records' name prefix
-- (Keys.player_prefix), ARGV[4] party mode
-- Returns a flat array {player id, code, "1" if dequeued else "", pod holding the player ("" =
-- nobody), ...}, one per member.
local parties_key, members_key, expiry_key, queue_key, tickets_key, pods_key, deadlines_key =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local prefix, mode = ARGV[3], ARGV[4]
local codes = redis.call('ZRANGEBYSCORE', expiry_key, '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, code in ipairs(codes) do
    local raw = redis.call('HGET', parties_key, code)
    if raw then
        for _, member in ipairs(cjson.decode(raw).members) do
            if redis.call('HGET', members_key, member) == code then
                redis.call('HDEL', members_key, member)
            end
            local dequeued = ''
            if redis.call('ZSCORE', queue_key, member) then
                dequeued = '1'
                cg_drop_ticket(queue_key, tickets_key, pods_key, member)
                if cg_queued_in(prefix .. member, mode) then
                    cg_set_idle(prefix .. member, deadlines_key, member)
                end
            end
            out[#out + 1] = member
            out[#out + 1] = code
            out[#out + 1] = dequeued
            out[#out + 1] = redis.call('HGET', prefix .. member, 'pod') or ''
        end
    end
    redis.call('HDEL', parties_key, code)
    redis.call('ZREM', expiry_key, code)
end
return out
