--#include queue_common
-- Settle deliveries as done. ARGV (after the group and consumer of queue_common):
-- 3 dedupe window ms, 4.. tokens.
-- Returns {flags, acked}: one flag per token (1 acked, 0 unknown or already settled:
-- nothing changed), and {message_id, first enqueue ms, deliveries} per acked delivery.
-- The stream commands and the dedupe update are issued once per batch, not per token.
local now = now_ms()
local window = tonumber(ARGV[3])
local results = {}
local ids = {{}, {}, {}}
local settled = {}
local acked = {}
for i = 4, #ARGV do
  local token = ARGV[i]
  local pidx, id = parse_token(token)
  local done = 0
  if pidx and redis.call('ZREM', KEYS[4], token) == 1 then
    local rng = redis.call('XRANGE', KEYS[pidx], id, id)
    if #rng > 0 then
      local entry = ids[pidx]
      entry[#entry + 1] = id
      local fi, _, fa, _, _, ft = entry_fields(rng[1][2])
      settled[#settled + 1] = fi
      acked[#acked + 1] = {fi, ft, tonumber(fa) + 1}
      done = 1
    else
      redis.call('XACK', KEYS[pidx], GROUP, id)
    end
  end
  results[#results + 1] = done
end
for pidx = 1, 3 do
  if #ids[pidx] > 0 then
    redis.call('XACK', KEYS[pidx], GROUP, unpack(ids[pidx]))
    redis.call('XDEL', KEYS[pidx], unpack(ids[pidx]))
  end
end
if #settled > 0 then
  if window > 0 then
    local args = {}
    for _, msgid in ipairs(settled) do
      args[#args + 1] = now + window
      args[#args + 1] = msgid
    end
    redis.call('ZADD', KEYS[8], 'XX', unpack(args))
  else
    redis.call('ZREM', KEYS[8], unpack(settled))
  end
end
return {results, acked}
