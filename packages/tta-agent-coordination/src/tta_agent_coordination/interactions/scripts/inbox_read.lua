-- Read the oldest unread messages of an inbox (all senders, or one), marking them read.
-- KEYS[1] unread zset, KEYS[2] body hash, KEYS[3] log stream, KEYS[4] the index read
-- (KEYS[1] itself, or one sender's unread zset)
-- ARGV[1] limit, ARGV[2] '1' to mark them read, ARGV[3] prefix of the per-sender
-- indexes ("<inbox base>:from:"; the same hash tag as KEYS)
-- Returns {last log id, id1, body1, id2, body2, ...}. The last log id and the read are
-- one atomic step: a waiter that blocks from that id misses no later arrival. Marking
-- read removes the messages, so concurrent readers get disjoint messages.
local out = {}
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
out[1] = last[1] and last[1][1] or '0-0'
local ids = redis.call('ZRANGE', KEYS[4], 0, tonumber(ARGV[1]) - 1)
for _, id in ipairs(ids) do
  local body = redis.call('HGET', KEYS[2], id)
  if body then
    out[#out + 1] = id
    out[#out + 1] = body
  end
  if ARGV[2] == '1' then
    if body then
      local first = string.find(body, '|', 1, true)
      local second = string.find(body, '|', first + 1, true)
      redis.call('ZREM', ARGV[3] .. string.sub(body, first + 1, second - 1), id)
      redis.call('HDEL', KEYS[2], id)
    end
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[4], id)
  end
end
return out
