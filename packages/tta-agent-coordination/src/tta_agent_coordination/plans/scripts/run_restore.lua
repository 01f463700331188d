-- Put a run recorded outside Redis back after a Redis loss, once.
-- KEYS[1] state hash, KEYS[2] event stream (one hash tag).
-- ARGV[1] state JSON, ARGV[2] status, ARGV[3] the recorded version, ARGV[4] events
-- MAXLEN, ARGV[5] event kind, ARGV[6] event data JSON.
-- Returns {1, version} when written, {0, current version} when the run exists already
-- (Redis kept it, or an earlier restore wrote it): it is never overwritten.
local existing = redis.call('HGET', KEYS[1], 'version')
if existing then
  return {0, tonumber(existing)}
end
redis.call('HSET', KEYS[1], 'doc', ARGV[1], 'version', ARGV[3], 'status', ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*',
  'kind', ARGV[5], 'data', ARGV[6], 'v', ARGV[3])
return {1, tonumber(ARGV[3])}
