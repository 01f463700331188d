-- Shared helpers of the circuit-breaker scripts (inlined by the loader; see redis/lua.py).
-- The same state machine in Python: resilience/breaker_state.py (the two change together).
-- KEYS[1] is the breaker's hash (KeySpace.breaker_state). Fields:
--   s state (closed|open|half_open)   g generation (+1 on every transition)
--   f consecutive failures (closed)   w sliding window, newest first ('1' failure, '0' success)
--   u open-until (ms, server clock)   k successful probes (half_open)
--   i probes in flight (half_open)    d probe deadline (ms): slots held past it are reclaimed
--   n openings in a row (the open time grows with it)
--   c when the breaker last closed (ms): an opening max_timeout_ms after it starts a new run
-- Every script replies {state, generation, failures, retry_after_ms (-1 unless open), ...}.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function load_breaker()
  local v = redis.call('HMGET', KEYS[1], 's', 'g', 'f', 'w', 'u', 'k', 'i', 'd', 'n', 'c')
  return {
    s = v[1] or 'closed', g = tonumber(v[2]) or 0, f = tonumber(v[3]) or 0, w = v[4] or '',
    u = tonumber(v[5]) or 0, k = tonumber(v[6]) or 0, i = tonumber(v[7]) or 0,
    d = tonumber(v[8]) or 0, n = tonumber(v[9]) or 0, c = tonumber(v[10]) or 0,
  }
end

local function save_breaker(b, ttl_ms)
  redis.call('HSET', KEYS[1], 's', b.s, 'g', b.g, 'f', b.f, 'w', b.w, 'u', b.u, 'k', b.k,
    'i', b.i, 'd', b.d, 'n', b.n, 'c', b.c)
  redis.call('PEXPIRE', KEYS[1], ttl_ms)
end

-- Enter state; opening needs open = {base_ms, multiplier, max_ms}: the open time is
-- base_ms * multiplier ^ (openings in a row - 1), at most max_ms.
local function move(b, state, now, open)
  local previous = b.s
  b.s = state
  b.g = b.g + 1
  b.f = 0
  b.w = ''
  b.k = 0
  b.i = 0
  if state == 'open' then
    if previous == 'closed' and now - b.c >= open.max_ms then
      b.n = 0
    end
    b.n = b.n + 1
    local open_ms = open.base_ms * open.multiplier ^ (b.n - 1)
    if open_ms > open.max_ms then
      open_ms = open.max_ms
    end
    b.u = now + math.floor(open_ms)
  elseif state == 'closed' then
    b.c = now
  end
end

local function reply(b, now, ...)
  local retry = -1
  if b.s == 'open' then
    retry = math.max(b.u - now, 0)
  end
  return {b.s, b.g, b.f, retry, ...}
end
