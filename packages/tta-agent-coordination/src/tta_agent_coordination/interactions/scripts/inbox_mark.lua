-- Mark messages of an inbox read.
-- KEYS[1] unread zset, KEYS[2] body hash; ARGV[1..] message ids
-- Returns how many of them were unread (a message is marked read once). The senders'
-- indexes keep the ids until a read or an append drops them (see inbox_read).
local count = 0
for i = 1, #ARGV do
  if redis.call('HDEL', KEYS[2], ARGV[i]) == 1 then
    redis.call('ZREM', KEYS[1], ARGV[i])
    count = count + 1
  end
end
return count
