-- Mark messages of an inbox read.
-- KEYS[1] unread zset, KEYS[2] body hash; ARGV[1] prefix of the per-sender indexes,
-- ARGV[2..] message ids
-- Returns how many of them were unread (a message is marked read once).
local count = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local body = redis.call('HGET', KEYS[2], id)
  if body then
    local first = string.find(body, '|', 1, true)
    local second = string.find(body, '|', first + 1, true)
    redis.call('ZREM', ARGV[1] .. string.sub(body, first + 1, second - 1), id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', KEYS[1], id)
    count = count + 1
  end
end
return count
