--#include queue_common
-- Extend a lease. ARGV (after the group and consumer of queue_common): 3 token,
-- 4 milliseconds from now.
-- Returns the new deadline (ms), or 0 for an unknown or settled token.
local token = ARGV[3]
if not parse_token(token) or not redis.call('ZSCORE', KEYS[4], token) then return 0 end
local deadline = now_ms() + tonumber(ARGV[4])
redis.call('ZADD', KEYS[4], 'XX', deadline, token)
return deadline
