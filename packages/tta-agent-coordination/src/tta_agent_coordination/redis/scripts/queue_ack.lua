--#include queue_common
-- Settle deliveries as done. ARGV: 1 dedupe window ms, 2.. tokens.
-- Returns one flag per token: 1 acked, 0 unknown or already settled (nothing changed).
local now = now_ms()
local window = tonumber(ARGV[1])
local results = {}
for i = 2, #ARGV do
  local token = ARGV[i]
  local pidx, id = parse_token(token)
  local done = 0
  if pidx and redis.call('ZSCORE', KEYS[4], token) then
    local f = take_delivery(pidx, id, token)
    if f then
      settle_dedupe(f.i, now, window)
      done = 1
    end
  end
  results[#results + 1] = done
end
return results
