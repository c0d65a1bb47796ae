-- Ticket lifetime: take out of a queue every player who has waited longer than the maximum.
-- Players being paired (in flight) are not touched: their lease decides.
-- KEYS[1] queue, KEYS[2] tickets, KEYS[3] ticket pods, KEYS[4] deadlines; one hash slot ({mm})
-- ARGV[1] cutoff: enqueue time (ms) at or before which a ticket has expired
-- ARGV[2] most players to expire in this call
-- ARGV[3] the records' name prefix (Keys.player_prefix), ARGV[4] mode
-- ARGV[5] the `dequeued` message kept for a player whom nobody holds, for their next welcome
-- Returns a flat array {player id, pod id, ...} of the players removed (to tell them why).
local queue_key, tickets_key, pods_key, deadlines_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, mode, notice = ARGV[3], ARGV[4], ARGV[5]
local expired = redis.call('ZRANGEBYSCORE', queue_key, '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, player_id in ipairs(expired) do
    local record = prefix .. player_id
    local pod = redis.call('HGET', record, 'pod') or ''
    out[#out + 1] = player_id
    out[#out + 1] = pod
    cg_drop_ticket(queue_key, tickets_key, pods_key, player_id)
    if cg_queued_in(record, mode) then
        cg_set_idle(record, deadlines_key, player_id)
        if pod == '' then
            redis.call('HSET', record, 'notice', notice)
        end
    end
end
return out
