-- A handler takes the message of a wait: marks it picked, if that wait still stands.
-- KEYS[1] state hash; ARGV[1] the waiting side ('a'|'b'), ARGV[2] its correlation id
-- Returns 1 when the wait stands (run the handler), 0 when it is over (skip it).
--#include common
local f = redis.call('HMGET', KEYS[1], 'wait_' .. ARGV[1], 'until_' .. ARGV[1])
if f[1] == ARGV[2] and tonumber(f[2] or '0') >= now_ms() then
  redis.call('HSET', KEYS[1], 'picked_' .. ARGV[1], '1')
  return 1
end
return 0
