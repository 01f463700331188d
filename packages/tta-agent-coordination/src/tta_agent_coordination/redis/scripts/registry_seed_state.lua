--#include registry_common
-- Store a saved state for an agent that is not registered now, for its next registration
-- (an import_state hook receives it): a migration, or a state moved from elsewhere.
-- KEYS: 1 liveness zset, 2 state string. ARGV: 1 id, 2 state JSON, 3 retention ms,
-- 4 replace (1/0).
-- Returns 1 stored, 0 kept (a state is there and replace is 0), -1 refused (the agent is
-- held by a live owner now: its own heartbeats write its state).
local now = now_ms()
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) > now then return -1 end
if ARGV[4] ~= '1' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
