-- End an open conversation; its waits are over.
-- KEYS[1] state hash, KEYS[2] log stream
-- ARGV[1] who ends it, ARGV[2] the end marker (JSON), ARGV[3] retention of an ended
-- conversation (ms), ARGV[4] log cap
-- Returns {1, epoch, corr_a, addr_a, corr_b, addr_b} (a wait that stood: its correlation
-- id and reply address, else ''), or {0} when no conversation was open.
local f = redis.call('HMGET', KEYS[1], 'status', 'epoch',
  'wait_a', 'addr_a', 'wait_b', 'addr_b')
if f[1] ~= 'open' then
  return {0}
end
redis.call('HSET', KEYS[1], 'status', 'ended', 'ended_by', ARGV[1])
redis.call('HDEL', KEYS[1], 'wait_a', 'addr_a', 'picked_a', 'until_a',
  'wait_b', 'addr_b', 'picked_b', 'until_b')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'm', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {1, f[2], f[3] or '', f[4] or '', f[5] or '', f[6] or ''}
