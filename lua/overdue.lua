-- Battles and PvE past their deadline end: the players are freed. Their game servers are told
-- (battle_failed), so nobody waits for a result that will not come.
-- KEYS[1] deadlines; one hash slot ({mm}) with the records
-- ARGV[1] the records' name prefix (Keys.player_prefix), ARGV[2] now (ms), ARGV[3] most players
-- Returns a flat array {player id, match id, pod ("" = nobody), ...} of the players freed.
local deadlines_key = KEYS[1]
local prefix, now, limit = ARGV[1], ARGV[2], ARGV[3]
local due = redis.call('ZRANGEBYSCORE', deadlines_key, '-inf', now, 'LIMIT', 0, limit)
local out = {}
for _, player_id in ipairs(due) do
    local record = prefix .. player_id
    local act, match_id, deadline, pod =
        unpack(redis.call('HMGET', record, 'act', 'match', 'until', 'pod'))
    if (act == 'battle' or act == 'pve') and tonumber(deadline or '0') <= tonumber(now) then
        cg_set_idle(record, deadlines_key, player_id)
        out[#out + 1] = player_id
        out[#out + 1] = match_id or ''
        out[#out + 1] = pod or ''
    else
        redis.call('ZREM', deadlines_key, player_id)
    end
end
return out
