-- Join a party by its invite code (a party holds two players).
-- KEYS[1] parties, KEYS[2] party members, KEYS[3] party expiry; one hash slot ({mm})
-- ARGV[1] code, ARGV[2] player id, ARGV[3] now (ms)
-- Returns {status, party JSON or ""}; status: "ok" (joined, or already a member of this one),
-- "not_found", "expired", "full", or "in_party" (a member of another live party).
-- Nothing is written unless the status is "ok".
local parties_key, members_key, expiry_key = KEYS[1], KEYS[2], KEYS[3]
local code, player_id, now = ARGV[1], ARGV[2], tonumber(ARGV[3])

local raw = redis.call('HGET', parties_key, code)
if not raw then
    return {'not_found', ''}
end
local party = cjson.decode(raw)
if party.expires_ms <= now then
    return {'expired', ''}  -- the match servers' sweep removes it and tells its members
end
local current = redis.call('HGET', members_key, player_id)
if current == code then
    return {'ok', raw}
end
if current then
    local other = redis.call('HGET', parties_key, current)
    if other and cjson.decode(other).expires_ms > now then
        return {'in_party', other}
    end
end
if #party.members >= 2 then
    return {'full', ''}
end
party.members[#party.members + 1] = player_id
raw = cjson.encode(party)
redis.call('HSET', parties_key, code, raw)
redis.call('HSET', members_key, player_id, code)
return {'ok', raw}
