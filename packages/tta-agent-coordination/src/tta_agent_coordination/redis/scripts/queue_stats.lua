--#include queue_common
-- A consistent snapshot: {ready HIGH, ready NORMAL, ready LOW, leased, delayed, dead,
-- oldest ready HIGH, NORMAL, LOW, now}. ARGV: only the group and consumer of
-- queue_common. A ready stream without its consumer group gets it back (restore_group
-- in queue_common), so the counts stay exact.
-- "oldest ready" is the entry-id time (ms, server clock) of the first entry past the
-- group's last-delivered id: the oldest message of that priority waiting to be leased,
-- since it entered the stream (its send, or its requeue after a retry or an expired
-- lease); 0 when none is ready. Leased entries are never past that id (a redelivery is a
-- new entry at the tail), so one XINFO GROUPS and one XRANGE COUNT 1 find it.
local out = {}
local leased = 0
for pidx = 1, 3 do
  local stream = KEYS[pidx]
  local len, pending, oldest = 0, 0, 0
  if redis.call('EXISTS', stream) == 1 then
    len = redis.call('XLEN', stream)
    pending = tonumber(call_with_group(pidx, 'XPENDING', stream, GROUP)[1])
    if len > pending then
      local last = '0-0'
      for _, group in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
        local g = to_table(group)
        if g['name'] == GROUP then last = g['last-delivered-id'] end
      end
      local first = redis.call('XRANGE', stream, '(' .. last, '+', 'COUNT', 1)[1]
      if first then oldest = tonumber(string.match(first[1], '^(%d+)')) end
    end
  end
  out[pidx] = len - pending
  out[6 + pidx] = oldest
  leased = leased + pending
end
out[4] = leased
out[5] = redis.call('ZCARD', KEYS[5])
out[6] = redis.call('XLEN', KEYS[7])
out[10] = now_ms()
return out
