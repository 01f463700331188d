--#include queue_common
-- Extend a lease. ARGV: 1 token, 2 milliseconds from now.
-- Returns the new deadline (ms), or 0 for an unknown or settled token.
local token = ARGV[1]
if not parse_token(token) or not redis.call('ZSCORE', KEYS[4], token) then return 0 end
local deadline = now_ms() + tonumber(ARGV[2])
redis.call('ZADD', KEYS[4], 'XX', deadline, token)
return deadline
