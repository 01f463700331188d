--#include queue_common
-- Cancel a scheduled send while it is still in the delayed set. ARGV (after the group and
-- consumer of queue_common): 3 message_id.
-- Only a message never delivered (deliveries 0: a scheduled send, or one restored with
-- its due time) is cancelled; a retry waiting out its backoff is not a scheduled send.
-- Once a receive or recovery has promoted it (at or after its due time) it is in a ready
-- stream and this changes nothing: one script or the other wins, never both.
-- Removes, in one step, the delayed entry, its data and its dedupe entry, so a later send
-- with the same id is a new message (cancel and send again = reschedule).
-- Returns {1, first enqueue ms} when cancelled, {0} otherwise (nothing changed).
local msgid = ARGV[3]
if not redis.call('ZSCORE', KEYS[5], msgid) then return {0} end
local blob = redis.call('HGET', KEYS[6], msgid)
if not blob then return {0} end
local ok, d = pcall(cjson.decode, blob)
if not ok or type(d) ~= 'table' or tonumber(d.a) ~= 0 then return {0} end
redis.call('ZREM', KEYS[5], msgid)
redis.call('HDEL', KEYS[6], msgid)
redis.call('ZREM', KEYS[8], msgid)
refresh_dedupe_expiry()
return {1, tonumber(d.t) or 0}
