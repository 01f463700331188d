--#include breaker_common
-- Apply the outcome of a call. KEYS, ARGV and the reply are declared in
-- redis/breaker_scripts.py (breaker_record, BreakerReply): {state, generation, failures,
-- retry_after_ms}. A stale generation changes nothing.
local admitted_generation = ARGV[1] -- '' = whatever the current one is
local outcome = ARGV[2] -- s|f|n|t (t: known down, open now)
local probe = ARGV[3] -- 0|1
local failure_threshold = tonumber(ARGV[4])
local window_size = tonumber(ARGV[5]) -- 0 = no window
local failure_rate_threshold = tonumber(ARGV[6])
local window_minimum_calls = tonumber(ARGV[7])
local success_threshold = tonumber(ARGV[8])
local open = {
  base_ms = tonumber(ARGV[9]),
  multiplier = tonumber(ARGV[10]),
  max_ms = tonumber(ARGV[11]),
}
local ttl_ms = tonumber(ARGV[12])

local now = now_ms()
local b = load_breaker()
if admitted_generation ~= '' and tonumber(admitted_generation) ~= b.g then
  return reply(b, now)
end
local dirty = false
if b.s == 'closed' then
  if outcome == 't' then
    move(b, 'open', now, open)
    dirty = true
  elseif outcome ~= 'n' then
    local failed = outcome == 'f'
    local before_f, before_w = b.f, b.w
    if failed then b.f = b.f + 1 else b.f = 0 end
    if window_size > 0 then
      b.w = string.sub((failed and '1' or '0') .. b.w, 1, window_size)
    end
    dirty = b.f ~= before_f or b.w ~= before_w
    if failed then
      local trip = b.f >= failure_threshold
      if not trip and window_size > 0 and #b.w >= window_minimum_calls then
        local _, fails = string.gsub(b.w, '1', '')
        trip = fails / #b.w >= failure_rate_threshold
      end
      if trip then
        move(b, 'open', now, open)
      end
    end
  end
elseif b.s == 'half_open' then
  if probe == '1' and admitted_generation ~= '' then
    b.i = math.max(b.i - 1, 0)
  end
  if outcome == 'f' or outcome == 't' then
    move(b, 'open', now, open)
  elseif outcome == 's' then
    b.k = b.k + 1
    if b.k >= success_threshold then
      move(b, 'closed', now, open)
    end
  end
  dirty = true
end
if dirty then
  save_breaker(b, ttl_ms)
end
return reply(b, now)
