--#include queue_common
-- A consistent snapshot: {ready HIGH, ready NORMAL, ready LOW, leased, delayed, dead}.
-- ARGV: only the group and consumer of queue_common. A ready stream without its consumer
-- group gets it back (restore_group in queue_common), so the counts stay exact.
local out = {}
local leased = 0
for pidx = 1, 3 do
  local stream = KEYS[pidx]
  local len, pending = 0, 0
  if redis.call('EXISTS', stream) == 1 then
    len = redis.call('XLEN', stream)
    pending = tonumber(call_with_group(pidx, 'XPENDING', stream, GROUP)[1])
  end
  out[pidx] = len - pending
  leased = leased + pending
end
out[4] = leased
out[5] = redis.call('ZCARD', KEYS[5])
out[6] = redis.call('XLEN', KEYS[7])
return out
