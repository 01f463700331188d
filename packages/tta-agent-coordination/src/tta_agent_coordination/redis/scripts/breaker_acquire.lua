--#include breaker_common
-- Admit a call. KEYS, ARGV and the reply are declared in redis/breaker_scripts.py
-- (breaker_acquire, AcquireReply): {state, generation, failures, retry_after_ms,
-- allowed 0|1, probe 0|1}. An open breaker whose deadline passed half-opens here (lazily,
-- on the next call).
local half_open_max_calls = tonumber(ARGV[1])
local probe_lease_ms = tonumber(ARGV[2])
local ttl_ms = tonumber(ARGV[3])

local now = now_ms()
local b = load_breaker()
local dirty = false
if b.s == 'open' and now >= b.u then
  move(b, 'half_open', now, nil)
  dirty = true
end
local allowed, probe = 0, 0
if b.s == 'closed' then
  allowed = 1
elseif b.s == 'half_open' then
  if b.i >= half_open_max_calls and now >= b.d then
    b.i = 0 -- the probes in flight were abandoned (their process died)
  end
  if b.i < half_open_max_calls then
    b.i = b.i + 1
    b.d = now + probe_lease_ms
    allowed, probe, dirty = 1, 1, true
  end
end
if dirty then
  save_breaker(b, ttl_ms)
end
return reply(b, now, allowed, probe)
