-- Read the oldest unread messages of an inbox (all senders, or one), marking them read.
-- KEYS[1] unread zset, KEYS[2] body hash, KEYS[3] log stream, KEYS[4] the index read
-- (KEYS[1] itself, or one sender's unread zset)
-- ARGV[1] limit, ARGV[2] '1' to mark them read
-- Returns {last log id, id1, body1, id2, body2, ...}. The last log id and the read are
-- one atomic step: a waiter that blocks from that id misses no later arrival. Marking
-- read removes the body, so concurrent readers get disjoint messages.
-- A sender's index may hold ids already read through the all-senders index (that read
-- cannot name the sender's key: every key a script touches is declared); such stale
-- ids are dropped here, and trimmed by inbox_append.
local out = {}
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
out[1] = last[1] and last[1][1] or '0-0'
local limit = tonumber(ARGV[1])
local mark = ARGV[2] == '1'
local after = '-inf'
local found = 0
local rounds = 0
while found < limit and rounds < 50 do
  rounds = rounds + 1
  local batch = redis.call('ZRANGEBYSCORE', KEYS[4], after, '+inf', 'WITHSCORES',
    'LIMIT', 0, limit - found)
  if #batch == 0 then
    break
  end
  for i = 1, #batch, 2 do
    local id = batch[i]
    after = '(' .. batch[i + 1]
    local body = redis.call('HGET', KEYS[2], id)
    if body then
      found = found + 1
      out[#out + 1] = id
      out[#out + 1] = body
      if mark then
        redis.call('HDEL', KEYS[2], id)
        redis.call('ZREM', KEYS[1], id)
        redis.call('ZREM', KEYS[4], id)
      end
    else
      redis.call('ZREM', KEYS[4], id)
    end
  end
end
return out
