--#include queue_common
-- Dead-letter deliveries the client could not decode (their envelope is not a valid
-- message), as 'malformed' with their raw fields (see dead_letter_malformed).
-- ARGV (after the group and consumer of queue_common): 3 dlq max length, 4 dedupe
-- window ms, then pairs of token and reason. A token whose lease is gone is skipped.
-- Returns {dead-lettered, moved}; moved as in queue_common.
local now = now_ms()
local dlq_max = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local count = 0
for i = 5, #ARGV, 2 do
  local token = ARGV[i]
  local pidx, id = parse_token(token)
  if pidx and redis.call('ZSCORE', KEYS[4], token) then
    local f = take_delivery(pidx, id, token)
    if f then
      dead_letter_malformed(pidx, id, f, ARGV[i + 1], now, dlq_max, window)
      count = count + 1
    end
  end
end
return {count, MOVED}
