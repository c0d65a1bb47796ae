-- Create a party of one (its owner) under a fresh invite code.
-- KEYS[1] parties (hash code -> party JSON), KEYS[2] party members (hash player -> code),
-- KEYS[3] party expiry (sorted set code -> expiry ms); one hash slot ({mm})
-- ARGV[1] code, ARGV[2] player id, ARGV[3] now (ms), ARGV[4] expiry (ms)
-- Returns {"ok", party JSON}, {"in_party", party JSON} when the player already is in a live
-- party, or {"taken", ""} when the code is in use (the caller draws another one).
local parties_key, members_key, expiry_key = KEYS[1], KEYS[2], KEYS[3]
local code, player_id, now, expires = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])

local current = redis.call('HGET', members_key, player_id)
if current then
    local raw = redis.call('HGET', parties_key, current)
    if raw and cjson.decode(raw).expires_ms > now then
        return {'in_party', raw}
    end
    redis.call('HDEL', members_key, player_id)  -- a stale pointer to an expired party
end
if redis.call('HEXISTS', parties_key, code) == 1 then
    return {'taken', ''}
end
local party = cjson.encode({code = code, owner = player_id, members = {player_id},
                            created_ms = now, expires_ms = expires})
redis.call('HSET', parties_key, code, party)
redis.call('HSET', members_key, player_id, code)
redis.call('ZADD', expiry_key, expires, code)
return {'ok', party}
