--#include queue_common
-- Move dead letters back to their ready streams with fresh attempts.
-- ARGV (after the group and consumer of queue_common): 3 start id (exclusive cursor, '-'
-- for the beginning), 4 batch size, 5 '1' to replay only the message ids that follow,
-- then the ids.
-- Skips (and keeps) a dead letter whose message id is live in the queue again, and refuses
-- (keeps) one that cannot be delivered: failure 'malformed', or no message id, envelope
-- or priority (written by another client).
-- Returns {replayed, next cursor or '' when the stream is exhausted, replayed message ids,
-- server time, refused}, each replayed message's first enqueue time being that time.
local now = now_ms()
local start = ARGV[3]
if start ~= '-' then start = '(' .. start end
local batch = tonumber(ARGV[4])
local only = nil
if ARGV[5] == '1' then
  only = {}
  for i = 6, #ARGV do only[ARGV[i]] = true end
end
local entries = redis.call('XRANGE', KEYS[7], start, '+', 'COUNT', batch)
local replayed = 0
local ids = {}
local refused = 0
for _, entry in ipairs(entries) do
  local f = to_table(entry[2])
  local pidx = tonumber(f.p)
  if f.f == 'malformed' or type(f.i) ~= 'string' or f.i == '' or type(f.m) ~= 'string'
      or f.m == '' or (pidx ~= 1 and pidx ~= 2 and pidx ~= 3) then
    -- Not a message this library can deliver: kept for inspection (dlq list), purge
    -- removes it.
    if not only or only[f.i or ''] then refused = refused + 1 end
  elseif (not only or only[f.i]) and
      tonumber(redis.call('ZSCORE', KEYS[8], f.i) or 0) ~= UNSETTLED then
    enqueue(pidx, f.i, f.m, 0, f.e, 0, now)
    redis.call('ZADD', KEYS[8], UNSETTLED, f.i)
    redis.call('PERSIST', KEYS[8])
    redis.call('XDEL', KEYS[7], entry[1])
    replayed = replayed + 1
    ids[#ids + 1] = f.i
  end
end
local cursor = ''
if #entries == batch then cursor = entries[#entries][1] end
return {replayed, cursor, ids, now, refused}
