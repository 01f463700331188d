-- Sweep the dedupe set of one queue that left the queue index (redis/dedupe_sweeper.py).
-- KEYS[1] the queue's dedupe zset (QueueKeys.dedupe). No ARGV.
-- Removes the ids whose dedupe window has passed (score <= now; an unsettled id, scored
-- 2^53 - 1, stays); Redis deletes the set with its last member. One step, so a send
-- racing with the sweep sees the set either before or after it.
-- Returns {ids removed, 1 if the set is gone now else 0}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local removed = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local deleted = 0
if removed > 0 and redis.call('EXISTS', KEYS[1]) == 0 then deleted = 1 end
return {removed, deleted}
