--#include queue_common
-- Enqueue messages into one queue. KEYS: 1..9 of queue_common's list only (it never
-- touches the lessee keys 10, 11, so the caller does not send them: queue_send.py).
-- ARGV (after the group and consumer of queue_common):
-- 3 queue_size, then for each message: stream index, message_id, envelope, expires_at ms
-- (0 = never), delay ms (0 = none), not_before ms (server clock; 0 = none).
-- A message is due at max(now + delay, not_before), both on this server's clock: one due
-- after now goes to the delayed set (promoted into its ready stream by receive or
-- recovery once due, as a retry is; a parked receive is woken through the wake stream
-- when it is due before anything already delayed: schedule_delayed), otherwise straight into its ready stream. Either
-- way it counts as unsettled (queue_size, dedupe) from now on.
-- Returns {codes, now, dues}: one code per message (1 enqueued, 2 scheduled, 0 duplicate
-- (unsettled, or settled within the dedupe window, or earlier in this batch), -1 queue
-- full); the server time (ms) written as each accepted message's first enqueue time; one
-- due time (ms) per message, 0 unless scheduled.
--
-- Out of memory (maxmemory with noeviction): the first write of this script must be a
-- deny-oom command (XGROUP CREATE, XADD, HSET: schedule_delayed's first write), so that Redis refuses the whole call with
-- an OOM error before anything moved. Redis checks a script without a `#!lua` shebang for
-- OOM only at its first write, and lets every later write through: a first write that
-- is not deny-oom (the ZREMRANGEBYSCORE prune this script used to start with) let
-- 50,000 sends through a 5 MB limit (issue 23). A `#!lua flags=...` shebang would make
-- Redis check before the script runs, but FakeRedis cannot load scripts with a shebang,
-- so the order is the guard instead: expired dedupe entries are skipped by score here
-- and pruned after the loop. Keep every write below the first XGROUP/XADD/HSET.
local now = now_ms()
local size = tonumber(ARGV[3])
-- unsettled_count(), with the ready streams' lengths kept: a stream that holds entries
-- exists, so its EXISTS check before the first XADD is skipped (issue 20: one call less
-- per send to a non-empty queue; an empty or missing stream is still checked).
local lens = {redis.call('XLEN', KEYS[1]), redis.call('XLEN', KEYS[2]),
  redis.call('XLEN', KEYS[3])}
local unsettled = lens[1] + lens[2] + lens[3] + redis.call('ZCARD', KEYS[5])
local codes = {}
local dues = {}
local ready = {}
local marked = false
for i = 4, #ARGV, 6 do
  local pidx = tonumber(ARGV[i])
  local msgid = ARGV[i + 1]
  local seen = redis.call('ZSCORE', KEYS[8], msgid)
  local due = now + tonumber(ARGV[i + 4])
  local not_before = tonumber(ARGV[i + 5])
  if not_before > due then due = not_before end
  if seen and tonumber(seen) > now then
    codes[#codes + 1] = 0
    dues[#dues + 1] = 0
  elseif unsettled >= size then
    codes[#codes + 1] = -1
    dues[#dues + 1] = 0
  elseif due > now then
    -- The layout of a scheduled retry (queue_nack.lua), with no delivery yet.
    schedule_delayed(msgid, due, cjson.encode({p = pidx, i = msgid, m = ARGV[i + 2],
      a = 0, e = '', x = ARGV[i + 3], t = tostring(now)}))
    redis.call('ZADD', KEYS[8], UNSETTLED, msgid)
    marked = true
    unsettled = unsettled + 1
    codes[#codes + 1] = 2
    dues[#dues + 1] = due
  else
    local stream = KEYS[pidx]
    if not ready[pidx] then
      if lens[pidx] == 0 and redis.call('EXISTS', stream) == 0 then
        redis.call('XGROUP', 'CREATE', stream, GROUP, '0', 'MKSTREAM')
      end
      ready[pidx] = true
    end
    redis.call('XADD', stream, '*', 'i', msgid, 'm', ARGV[i + 2], 'a', 0, 'e', '',
      'x', ARGV[i + 3], 't', now)
    redis.call('ZADD', KEYS[8], UNSETTLED, msgid)
    marked = true
    unsettled = unsettled + 1
    codes[#codes + 1] = 1
    dues[#dues + 1] = 0
  end
end
-- An unsettled id must outlive any expiry the set had (see refresh_dedupe_expiry).
if marked then redis.call('PERSIST', KEYS[8]) end
-- Not deny-oom, and it frees memory: runs even when the server is full.
redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now)
return {codes, now, dues}
