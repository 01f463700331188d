--#include queue_common
-- Enqueue messages into one queue. ARGV (after the group and consumer of queue_common):
-- 3 queue_size, then for each message: stream index, message_id, envelope, expires_at ms
-- (0 = never).
-- Returns one code per message: 1 enqueued, 0 duplicate (unsettled, or settled within
-- the dedupe window, or earlier in this batch), -1 queue full; then one more element,
-- the server time (ms) written as each enqueued message's first enqueue time.
--
-- Out of memory (maxmemory with noeviction): the first write of this script must be a
-- deny-oom command (XGROUP CREATE, XADD), so that Redis refuses the whole call with an
-- OOM error before anything moved. Redis checks a script without a `#!lua` shebang for
-- OOM only at its first write, and lets every later write through: a first write that
-- is not deny-oom (the ZREMRANGEBYSCORE prune this script used to start with) let
-- 50,000 sends through a 5 MB limit (issue 23). A `#!lua flags=...` shebang would make
-- Redis check before the script runs, but FakeRedis cannot load scripts with a shebang,
-- so the order is the guard instead: expired dedupe entries are skipped by score here
-- and pruned after the loop. Keep every write below the first XGROUP/XADD.
local now = now_ms()
local size = tonumber(ARGV[3])
local unsettled = unsettled_count()
local results = {}
local ready = {}
for i = 4, #ARGV, 4 do
  local pidx = tonumber(ARGV[i])
  local msgid = ARGV[i + 1]
  local seen = redis.call('ZSCORE', KEYS[8], msgid)
  if seen and tonumber(seen) > now then
    results[#results + 1] = 0
  elseif unsettled >= size then
    results[#results + 1] = -1
  else
    local stream = KEYS[pidx]
    if not ready[pidx] then
      if redis.call('EXISTS', stream) == 0 then
        redis.call('XGROUP', 'CREATE', stream, GROUP, '0', 'MKSTREAM')
      end
      ready[pidx] = true
    end
    redis.call('XADD', stream, '*', 'i', msgid, 'm', ARGV[i + 2], 'a', 0, 'e', '',
      'x', ARGV[i + 3], 't', now)
    redis.call('ZADD', KEYS[8], UNSETTLED, msgid)
    unsettled = unsettled + 1
    results[#results + 1] = 1
  end
end
-- Not deny-oom, and it frees memory: runs even when the server is full.
redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now)
results[#results + 1] = now
return results
