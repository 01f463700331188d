--#include registry_common
-- Expire every registration whose liveness passed (up to a limit), atomically: each
-- is reported by exactly one 'expired' event however many reapers run at once.
-- KEYS: 1 liveness zset, 2 events stream.
-- ARGV: 1 limit, 2 retention ms, 3 events maxlen, 4 agent-hash head,
-- 5 capability-set head, 6 type-set head.
-- Returns {more (1/0), id...}.
local zset, events = KEYS[1], KEYS[2]
local limit = tonumber(ARGV[1])
local retention = tonumber(ARGV[2])
local maxlen = tonumber(ARGV[3])
local agent_head, cap_head, type_head = ARGV[4], ARGV[5], ARGV[6]
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, limit)
local out = {0}
for _, id in ipairs(due) do
  if expire_one(zset, events, id, agent_head .. id, now, retention, maxlen,
      cap_head, type_head) == 1 then
    out[#out + 1] = id
  end
end
if #due >= limit then out[1] = 1 end
return out
