--#include queue_common
-- Enqueue messages again from a message store after a Redis loss. ARGV (after the group
-- and consumer of queue_common): ARGV[3] the DLQ's max length, ARGV[4] the dedupe window
-- (ms); then, from ARGV[5], for each message: stream index, message_id, envelope,
-- deliveries so far, last error, expires_at ms (0 = never), first enqueue ms,
-- available_at ms (its due time, server clock; 0 = ready now), failure type ('' = alive).
-- A dead message (a failure type) goes back to the dead-letter queue with that failure
-- and its last error, settled in the dedupe set like any dead letter; a message whose due
-- time is still ahead goes back to the delayed set with that due time (a scheduled send
-- keeps its schedule); any other one goes to its ready stream.
-- A message whose id is in the dedupe set (unsettled here, or settled within the dedupe
-- window) is skipped, so a restore run twice, or while Redis still holds some of the
-- messages, enqueues each message once. Not subject to queue_size (like a replay).
-- Returns one flag per message: 1 restored, 0 skipped.
-- Out of memory: the first write must be deny-oom (enqueue's XGROUP CREATE or XADD, or
-- HSET), so that Redis refuses the whole call before anything moved (see queue_send.lua);
-- expired dedupe entries are skipped by score and pruned after the loop.
local now = now_ms()
local results = {}
local marked = false
local dlq_max = tonumber(ARGV[3])
local window_ms = tonumber(ARGV[4])
for i = 5, #ARGV, 9 do
  local msgid = ARGV[i + 1]
  local seen = redis.call('ZSCORE', KEYS[8], msgid)
  if seen and tonumber(seen) > now then
    results[#results + 1] = 0
  elseif ARGV[i + 8] ~= '' then
    redis.call('XADD', KEYS[7], 'MAXLEN', dlq_max, '*', 'i', msgid, 'm', ARGV[i + 2],
      'p', ARGV[i], 'a', ARGV[i + 3], 'e', ARGV[i + 4], 'f', ARGV[i + 8], 'd', now,
      't', ARGV[i + 6])
    if window_ms > 0 then
      -- Settled, as a dead letter is: the set's expiry follows its latest settled entry.
      redis.call('ZADD', KEYS[8], now + window_ms, msgid)
      refresh_dedupe_expiry()
    end
    results[#results + 1] = 1
  else
    local pidx = tonumber(ARGV[i])
    local due = tonumber(ARGV[i + 7])
    if due > now then
      schedule_delayed(msgid, due, cjson.encode({p = pidx, i = msgid, m = ARGV[i + 2],
        a = tonumber(ARGV[i + 3]), e = ARGV[i + 4], x = ARGV[i + 5], t = ARGV[i + 6]}))
    else
      enqueue(pidx, msgid, ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4], ARGV[i + 5],
        ARGV[i + 6])
    end
    redis.call('ZADD', KEYS[8], UNSETTLED, msgid)
    marked = true
    results[#results + 1] = 1
  end
end
-- An unsettled id must outlive any expiry the set had (see refresh_dedupe_expiry).
if marked then redis.call('PERSIST', KEYS[8]) end
-- Not deny-oom, and it frees memory: runs even when the server is full.
redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now)
return results
