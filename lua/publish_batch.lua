-- Publish many messages in one round trip (e.g. every MatchFound and BattleRequest of a tick).
-- KEYS: none (Pub/Sub channels are not keys; on a Redis Cluster PUBLISH reaches every node).
-- ARGV[1], ARGV[2]: channel, message; ARGV[3], ARGV[4]: the next pair; ... in publish order.
-- Returns the total number of receivers, summed over the messages.
local receivers = 0
for i = 1, #ARGV, 2 do
    receivers = receivers + redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
end
return receivers
