--#include registry_common
-- Before a registration: is the id held by a live owner, and what state is retained?
-- KEYS: 1 liveness zset, 2 state string. ARGV: 1 id.
-- Returns {holder expiry ms or 0 when free, has state (1/0), state JSON or ''}.
local now = now_ms()
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
local held = 0
if score and tonumber(score) > now then held = tonumber(score) - now end
local state = redis.call('GET', KEYS[2])
if state then return {held, 1, state} end
return {held, 0, ''}
