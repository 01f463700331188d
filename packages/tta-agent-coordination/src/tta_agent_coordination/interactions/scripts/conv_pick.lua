-- A handler takes the message of a wait: marks it picked, if that wait still stands.
-- KEYS[1] state hash; ARGV[1] the waiting side ('a'|'b'), ARGV[2] its correlation id
-- Returns 1 when the wait stands (run the handler), 0 when it is over (skip it).
if redis.call('HGET', KEYS[1], 'wait_' .. ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], 'picked_' .. ARGV[1], '1')
  return 1
end
return 0
