--#include breaker_common
-- Close the breaker and clear its counts, and forget its openings in a row; the
-- generation still grows, so calls admitted before the reset cannot change the new state.
-- KEYS, ARGV and the reply are declared in redis/breaker_scripts.py (breaker_reset,
-- BreakerReply): {state, generation, failures, retry_after_ms}.
local ttl_ms = tonumber(ARGV[1])

local now = now_ms()
local b = load_breaker()
move(b, 'closed', now, nil)
b.n = 0
b.c = 0
save_breaker(b, ttl_ms)
return reply(b, now)
