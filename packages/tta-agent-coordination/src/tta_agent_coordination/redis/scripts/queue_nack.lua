--#include queue_common
-- Settle a delivery as failed. ARGV: 1 token, 2 failure type, 3 error, 4 retry_attempts,
-- 5 backoff base ms, 6 backoff factor, 7 backoff max ms, 8 jitter multiplier (>= 1),
-- 9 dlq max length, 10 dedupe window ms.
-- Returns {code, message_id, first enqueue ms, deliveries}; code 0 unknown token (and
-- nothing else), 1 retry scheduled, 2 dead-lettered.
local token = ARGV[1]
local pidx, id = parse_token(token)
if not pidx or not redis.call('ZSCORE', KEYS[4], token) then return {0} end
local failure = ARGV[2]
local err = ARGV[3]
local retry_attempts = tonumber(ARGV[4])
local now = now_ms()
local f = take_delivery(pidx, id, token)
if not f then return {0} end
local deliveries = tonumber(f.a) + 1
if failure == 'permanent' or deliveries > retry_attempts then
  dead_letter(pidx, f, deliveries, err, failure, now, tonumber(ARGV[9]), tonumber(ARGV[10]))
  return {2, f.i, f.t, deliveries}
end
local delay = tonumber(ARGV[5]) * tonumber(ARGV[6]) ^ (deliveries - 1)
local cap = tonumber(ARGV[7])
if delay > cap then delay = cap end
delay = math.floor(delay * tonumber(ARGV[8]) + 0.5)
if delay <= 0 then
  enqueue(pidx, f.i, f.m, deliveries, err, f.x, f.t)
else
  redis.call('HSET', KEYS[6], f.i, cjson.encode({p = pidx, i = f.i, m = f.m,
    a = deliveries, e = err, x = f.x, t = f.t}))
  redis.call('ZADD', KEYS[5], now + delay, f.i)
end
return {1, f.i, f.t, deliveries}
