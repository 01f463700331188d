-- A wait gives up (its timeout passed): clear it, if it still stands.
-- KEYS[1] state hash; ARGV[1] side ('a'|'b'), ARGV[2] correlation id of the wait
-- Returns {1, picked} when it was cleared (picked: '1' when a handler took the
-- message), {0} when it was already over (answered or ended: the answer is on its way).
local f = redis.call('HMGET', KEYS[1], 'wait_' .. ARGV[1], 'picked_' .. ARGV[1])
if f[1] ~= ARGV[2] then
  return {0}
end
redis.call('HDEL', KEYS[1], 'wait_' .. ARGV[1], 'addr_' .. ARGV[1], 'picked_' .. ARGV[1],
  'until_' .. ARGV[1])
return {1, f[2] or '0'}
