--#include breaker_common
-- Admit a call. ARGV: 1 timeout_ms, 2 half_open_max_calls, 3 probe lease ms, 4 key ttl ms.
-- Reply: {state, generation, failures, retry_after_ms, allowed 0|1, probe 0|1}.
-- An open breaker whose deadline passed half-opens here (lazily, on the next call).
local now = now_ms()
local max_calls = tonumber(ARGV[2])
local b = load_breaker()
local dirty = false
if b.s == 'open' and now >= b.u then
  move(b, 'half_open', now, tonumber(ARGV[1]))
  dirty = true
end
local allowed, probe = 0, 0
if b.s == 'closed' then
  allowed = 1
elseif b.s == 'half_open' then
  if b.i >= max_calls and now >= b.d then
    b.i = 0 -- the probes in flight were abandoned (their process died)
  end
  if b.i < max_calls then
    b.i = b.i + 1
    b.d = now + tonumber(ARGV[3])
    allowed, probe, dirty = 1, 1, true
  end
end
if dirty then
  save_breaker(b, tonumber(ARGV[4]))
end
return reply(b, now, allowed, probe)
