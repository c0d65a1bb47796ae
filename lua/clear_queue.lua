-- Empty a mode's queue (no game server is left to play the battles): every waiting player is
-- idle again (told by the caller, or by a notice at their next welcome when nobody holds them). Players being paired are left to their
-- lease.
-- KEYS[1] queue, KEYS[2] tickets, KEYS[3] ticket pods, KEYS[4] deadlines; one hash slot ({mm})
-- ARGV[1] the records' name prefix (Keys.player_prefix), ARGV[2] mode, ARGV[3] the `dequeued`
-- message kept for each
-- Returns a flat array {player id, pod ("" = nobody), ...} of the players removed.
local queue_key, tickets_key, pods_key, deadlines_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, mode, notice = ARGV[1], ARGV[2], ARGV[3]
local out = {}
for _, player_id in ipairs(redis.call('ZRANGE', queue_key, 0, -1)) do
    local record = prefix .. player_id
    local pod = redis.call('HGET', record, 'pod') or ''
    cg_drop_ticket(queue_key, tickets_key, pods_key, player_id) -- not those being paired
    out[#out + 1] = player_id
    out[#out + 1] = pod
    if cg_queued_in(record, mode) then
        cg_set_idle(record, deadlines_key, player_id)
        if pod == '' then -- told now when someone holds them, else at the next welcome
            redis.call('HSET', record, 'notice', notice)
        end
    end
end
return out
