-- A battle ended (recorded, or failed for good): its players are free again. A player whose
-- record has moved on (a newer activity) is left alone.
-- KEYS[1] deadlines; one hash slot ({mm}) with the records
-- ARGV[1] the records' name prefix (Keys.player_prefix), ARGV[2] match id, then player ids
-- Returns {pod holding each player ("" = nobody), ...} in the order given: where to send the
-- result or the failure.
local deadlines_key = KEYS[1]
local prefix, match_id = ARGV[1], ARGV[2]
local pods = {}
for i = 3, #ARGV do
    local player_id = ARGV[i]
    local record = prefix .. player_id
    local act, held_match, pod = unpack(redis.call('HMGET', record, 'act', 'match', 'pod'))
    if (act == 'battle' or act == 'pve') and held_match == match_id then
        cg_set_idle(record, deadlines_key, player_id)
    end
    pods[#pods + 1] = pod or ''
end
return pods
