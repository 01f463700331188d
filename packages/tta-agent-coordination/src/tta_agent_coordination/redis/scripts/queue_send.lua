--#include queue_common
-- Enqueue one message. ARGV: 1 stream index, 2 message_id, 3 envelope,
-- 4 queue_size, 5 expires_at ms (0 = never).
-- Returns 1 enqueued, 0 duplicate (unsettled, or settled within the dedupe window),
-- -1 queue full.
local now = now_ms()
local msgid = ARGV[2]
redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now)
if redis.call('ZSCORE', KEYS[8], msgid) then return 0 end
if unsettled_count() >= tonumber(ARGV[4]) then return -1 end
enqueue(tonumber(ARGV[1]), msgid, ARGV[3], 0, '', ARGV[5], now)
redis.call('ZADD', KEYS[8], UNSETTLED, msgid)
return 1
