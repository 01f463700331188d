-- Append a message to an agent's inbox.
-- KEYS[1] unread zset, KEYS[2] unread-from-sender zset, KEYS[3] body hash,
-- KEYS[4] log stream, KEYS[5] seen zset, KEYS[6] meta hash
-- ARGV[1] message id, ARGV[2] sender, ARGV[3] message JSON, ARGV[4] most unread,
-- ARGV[5] log cap, ARGV[6] retention ms, ARGV[7] dedupe window ms
-- Returns {outcome, seq, now_ms}; outcome 'ok', 'duplicate' (the id arrived within the
-- dedupe window, or is still unread) or 'full' (the unread cap is reached).
--#include common
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - tonumber(ARGV[7]))
if redis.call('ZSCORE', KEYS[5], ARGV[1]) or redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then
  return {'duplicate', 0, now}
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return {'full', 0, now}
end
-- A sender's index larger than the cap holds ids read through the all-senders index:
-- drop some of them (bounded work per append keeps the index near the cap).
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, 99)) do
    if redis.call('HEXISTS', KEYS[3], id) == 0 then
      redis.call('ZREM', KEYS[2], id)
    end
  end
end
local seq = redis.call('HINCRBY', KEYS[6], 'seq', 1)
redis.call('ZADD', KEYS[1], seq, ARGV[1])
redis.call('ZADD', KEYS[2], seq, ARGV[1])
-- "<ms>|<sender>|<json>": the arrival time (server clock) travels with the message.
redis.call('HSET', KEYS[3], ARGV[1], string.format('%d', now) .. '|' .. ARGV[2] .. '|' .. ARGV[3])
redis.call('ZADD', KEYS[5], now, ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'id', ARGV[1])
for i = 1, 6 do
  redis.call('PEXPIRE', KEYS[i], ARGV[6])
end
return {'ok', seq, now}
