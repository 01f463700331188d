-- Bring an open conversation back after a Redis loss (from the store's record).
-- KEYS[1] state hash; ARGV[1] a, ARGV[2] b, ARGV[3] epoch, ARGV[4] retention ms
-- Returns 1 when restored, 0 when the pair has state already (nothing changed).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'a', ARGV[1], 'b', ARGV[2], 'status', 'open', 'epoch', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
