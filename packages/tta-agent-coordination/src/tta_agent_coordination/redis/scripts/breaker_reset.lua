--#include breaker_common
-- Close the breaker and clear its counts; the generation still grows, so calls admitted
-- before the reset cannot change the new state. ARGV: 1 key ttl ms.
-- Reply: {state, generation, failures, retry_after_ms}.
local now = now_ms()
local b = load_breaker()
move(b, 'closed', now, 0)
save_breaker(b, tonumber(ARGV[1]))
return reply(b, now)
