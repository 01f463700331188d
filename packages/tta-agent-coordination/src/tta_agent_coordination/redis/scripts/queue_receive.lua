--#include queue_common
-- Reserve up to ARGV[3] messages, highest priority first, FIFO within a priority.
-- ARGV (after the group and consumer of queue_common): 3 count, 4 visibility ms,
-- 5 retry_attempts, 6 dlq max length, 7 dedupe window ms, 8 maintenance limit (expired
-- leases / due retries handled first), 9 lessee: the instance receiving ('' = none; a
-- worker receiving from its type queue names itself, see record_lessees).
-- An entry that is not in the library's format is dead-lettered as 'malformed' (see
-- entry_problem) and the rest of the batch is delivered; a ready stream whose consumer
-- group is missing gets it back (restore_group).
-- Returns {deliveries, now, last ids of the three streams, next wake-up ms or -1,
-- recovered, expired, moved, malformed, last id of the wake stream}; the ids and the
-- wake-up only when fewer than count were reserved ({}, -1 and '0-0' otherwise). moved
-- lists the messages requeued or dead-lettered on the way (see queue_common); each
-- delivery is {token, envelope, deliveries, last error, first enqueue ms, lease deadline
-- ms}. The last ids and wake-up time let a blocking caller wait (XREAD BLOCK) for exactly
-- the entries this call could not see, and for a wake entry (a retry or scheduled send
-- due before the wake-up this call returned).

-- The last id stream has generated ('0-0' when it does not exist): XINFO STREAM's
-- last-generated-id (its reply is a flat field/value list on Redis and on FakeRedis, in
-- different orders, so the field is looked up by name).
local function last_generated_id(stream)
  if redis.call('EXISTS', stream) == 0 then return '0-0' end
  local info = redis.call('XINFO', 'STREAM', stream)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return info[i + 1] end
  end
  return '0-0'
end

local now = now_ms()
local count = tonumber(ARGV[3])
local vis = tonumber(ARGV[4])
local retry_attempts = tonumber(ARGV[5])
local dlq_max = tonumber(ARGV[6])
local window = tonumber(ARGV[7])
local limit = tonumber(ARGV[8])
local lessee = ARGV[9] or ''

local requeued, dead = reclaim_leases(now, limit, retry_attempts, dlq_max, window, false)
local recovered = requeued + dead + promote_due(now, limit)

local out = {}
local leases = {}
local expired = 0
local malformed = 0
for pidx = 1, 3 do
  local stream = KEYS[pidx]
  if #out < count and redis.call('EXISTS', stream) == 1 then
    while #out < count do
      local entries = read_entries(call_with_group(pidx, 'XREADGROUP', 'GROUP', GROUP,
        CONSUMER, 'COUNT', count - #out, 'STREAMS', stream, '>'))
      if #entries == 0 then break end
      for _, entry in ipairs(entries) do
        local id = entry[1]
        local fi, fm, fa, fe, fx, ft = entry_fields(entry[2])
        local problem = entry_problem(fi, fm, fa, fe, fx, ft)
        local x = problem and 0 or tonumber(fx)
        if problem then
          redis.call('XACK', stream, GROUP, id)
          redis.call('XDEL', stream, id)
          dead_letter_malformed(pidx, id, to_table(entry[2]), problem, now, dlq_max, window)
          malformed = malformed + 1
        elseif x > 0 and x <= now then
          local f = to_table(entry[2])
          redis.call('XACK', stream, GROUP, id)
          redis.call('XDEL', stream, id)
          dead_letter(pidx, f, tonumber(fa), 'expired before delivery', 'timeout', now,
            dlq_max, window)
          MOVED[#MOVED + 1] = {fi, ft, tonumber(fa), 2, 'expired before delivery',
            'timeout'}
          expired = expired + 1
        else
          local token = pidx .. '-' .. id
          leases[#leases + 1] = now + vis
          leases[#leases + 1] = token
          out[#out + 1] = {token, fm, tonumber(fa) + 1, fe, ft, now + vis}
        end
      end
    end
  end
end

-- Every lease of this call in one command (the deliveries are not returned before it).
if #leases > 0 then
  redis.call('ZADD', KEYS[4], unpack(leases))
  if lessee ~= '' then
    local tokens = {}
    for i = 2, #leases, 2 do tokens[#tokens + 1] = leases[i] end
    record_lessees(lessee, tokens)
  end
end

-- A call that reserved fewer than it asked for has drained its streams (every entry in
-- them is delivered): it also returns what a blocking caller needs to wait for exactly the
-- entries this call could not see, so that the caller need not run it again before it
-- waits. The ready streams' ids are their last *generated* ids (not their newest entry,
-- which an ack may have deleted): new entries always get a later id, so a wait from there
-- misses nothing, and a shared read already covering the stream from the entry it just
-- delivered needs no re-arm.
local last_ids = {}
local wake = -1
local wake_id = '0-0'
if #out < count then
  wake_id = wake_last_id()
  for pidx = 1, 3 do
    last_ids[pidx] = last_generated_id(KEYS[pidx])
  end
  for _, key in ipairs({KEYS[4], KEYS[5]}) do
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if first[2] then
      local at = tonumber(first[2])
      if wake < 0 or at < wake then wake = at end
    end
  end
end
return {out, now, last_ids, wake, recovered, expired, MOVED, malformed, wake_id}
