--#include breaker_common
-- Apply the outcome of a call. ARGV: 1 generation it was admitted in ('' = current),
-- 2 outcome s|f|n, 3 probe 0|1, 4 failure_threshold, 5 window_size (0 = no window),
-- 6 failure_rate_threshold, 7 minimum_calls, 8 success_threshold, 9 timeout_ms, 10 ttl ms.
-- Reply: {state, generation, failures, retry_after_ms}. A stale generation changes nothing.
local now = now_ms()
local b = load_breaker()
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= b.g then
  return reply(b, now)
end
local outcome = ARGV[2]
local timeout_ms = tonumber(ARGV[9])
local dirty = false
if b.s == 'closed' then
  if outcome ~= 'n' then
    local failed = outcome == 'f'
    local before_f, before_w = b.f, b.w
    if failed then b.f = b.f + 1 else b.f = 0 end
    local size = tonumber(ARGV[5])
    if size > 0 then
      b.w = string.sub((failed and '1' or '0') .. b.w, 1, size)
    end
    dirty = b.f ~= before_f or b.w ~= before_w
    if failed then
      local trip = b.f >= tonumber(ARGV[4])
      if not trip and size > 0 and #b.w >= tonumber(ARGV[7]) then
        local _, fails = string.gsub(b.w, '1', '')
        trip = fails / #b.w >= tonumber(ARGV[6])
      end
      if trip then
        move(b, 'open', now, timeout_ms)
      end
    end
  end
elseif b.s == 'half_open' then
  if ARGV[3] == '1' and ARGV[1] ~= '' then
    b.i = math.max(b.i - 1, 0)
  end
  if outcome == 'f' then
    move(b, 'open', now, timeout_ms)
  elseif outcome == 's' then
    b.k = b.k + 1
    if b.k >= tonumber(ARGV[8]) then
      move(b, 'closed', now, timeout_ms)
    end
  end
  dirty = true
end
if dirty then
  save_breaker(b, tonumber(ARGV[10]))
end
return reply(b, now)
