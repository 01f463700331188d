--#include queue_common
-- Settle a delivery as failed. ARGV (after the group and consumer of queue_common):
-- 3 token, 4 failure type, 5 error, 6 retry_attempts, 7 backoff base ms, 8 backoff factor,
-- 9 backoff max ms, 10 jitter multiplier (>= 1), 11 dlq max length, 12 dedupe window ms.
-- Returns {code, message_id, first enqueue ms, deliveries}; code 0 unknown token (and
-- nothing else), 1 retry scheduled, 2 dead-lettered.
local token = ARGV[3]
local pidx, id = parse_token(token)
if not pidx or not redis.call('ZSCORE', KEYS[4], token) then return {0} end
local failure = ARGV[4]
local err = ARGV[5]
local retry_attempts = tonumber(ARGV[6])
local now = now_ms()
local f = take_delivery(pidx, id, token)
if not f then return {0} end
local deliveries = tonumber(f.a) + 1
if failure == 'permanent' or deliveries > retry_attempts then
  dead_letter(pidx, f, deliveries, err, failure, now, tonumber(ARGV[11]), tonumber(ARGV[12]))
  return {2, f.i, f.t, deliveries}
end
local delay = tonumber(ARGV[7]) * tonumber(ARGV[8]) ^ (deliveries - 1)
local cap = tonumber(ARGV[9])
if delay > cap then delay = cap end
delay = math.floor(delay * tonumber(ARGV[10]) + 0.5)
if delay <= 0 then
  enqueue(pidx, f.i, f.m, deliveries, err, f.x, f.t)
else
  -- schedule_delayed wakes a receive parked on this queue when the retry is the next due
  -- (the nacking worker's own fetch loop is often parked with free slots).
  schedule_delayed(f.i, now + delay, cjson.encode({p = pidx, i = f.i, m = f.m,
    a = deliveries, e = err, x = f.x, t = f.t}))
end
return {1, f.i, f.t, deliveries}
