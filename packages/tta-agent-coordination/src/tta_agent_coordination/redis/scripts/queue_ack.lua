--#include queue_common
-- Settle deliveries as done. ARGV (after the group and consumer of queue_common):
-- 3 dedupe window ms, 4.. tokens.
-- Returns {flags, acked}: one flag per token (1 acked, 0 unknown or already settled:
-- nothing changed), and {message_id, first enqueue ms, deliveries} per acked delivery.
-- Reads first, writes after: every token is looked up before anything changes (a token
-- whose entry cannot be read, such as a ready stream another client overwrote with
-- another type, is not acked and keeps its lease: flag 0), then the stream commands
-- (XACK, XDEL, once per stream for the batch), and the leases go last. An error can
-- therefore never leave a lease removed with its entry still in the stream (which an
-- earlier version, removing each lease first, did). XACK on a stream whose consumer
-- group someone deleted is a no-op (no group, no PEL entry), so XDEL still settles it.
local now = now_ms()
local window = tonumber(ARGV[3])
local results = {}
local ids = {{}, {}, {}}
local stale = {{}, {}, {}}
local leases = {}
local settled = {}
local acked = {}
local seen = {}
for i = 4, #ARGV do
  local token = ARGV[i]
  local pidx, id = parse_token(token)
  local done = 0
  if pidx and not seen[token] and redis.call('ZSCORE', KEYS[4], token) then
    seen[token] = true
    local rng = redis.pcall('XRANGE', KEYS[pidx], id, id)
    if type(rng) == 'table' and rng.err then
      rng = nil
    else
      leases[#leases + 1] = token
    end
    if rng and #rng > 0 then
      local entry = ids[pidx]
      entry[#entry + 1] = id
      local fi, _, fa, _, _, ft = entry_fields(rng[1][2])
      -- An entry leased by another client may lack fields: it is settled all the same.
      if type(fi) == 'string' and fi ~= '' then
        settled[#settled + 1] = fi
        acked[#acked + 1] = {fi, tonumber(ft) or 0, (tonumber(fa) or 0) + 1}
      end
      done = 1
    elseif rng then
      local gone = stale[pidx]
      gone[#gone + 1] = id
    end
  end
  results[#results + 1] = done
end
for pidx = 1, 3 do
  if #ids[pidx] > 0 then
    redis.call('XACK', KEYS[pidx], GROUP, unpack(ids[pidx]))
    redis.call('XDEL', KEYS[pidx], unpack(ids[pidx]))
  end
  if #stale[pidx] > 0 then
    -- A lease whose entry is gone: only its PEL entry may be left.
    redis.call('XACK', KEYS[pidx], GROUP, unpack(stale[pidx]))
  end
end
if #leases > 0 then
  redis.call('ZREM', KEYS[4], unpack(leases))
  drop_lessees(leases)
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
  refresh_dedupe_expiry()
end
return {results, acked}
