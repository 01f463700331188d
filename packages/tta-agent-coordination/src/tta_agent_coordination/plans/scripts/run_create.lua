-- Create a run, once: its state document and its first events.
-- KEYS[1] state hash, KEYS[2] event stream (one hash tag).
-- ARGV[1] state JSON, ARGV[2] status, ARGV[3] events MAXLEN, ARGV[4] ttl ms (0: none),
-- ARGV[5..] event kind, event data JSON, ... (pairs).
-- Returns {1, version} when created, {0, version} when the run exists (unchanged).
local existing = redis.call('HGET', KEYS[1], 'version')
if existing then
  return {0, tonumber(existing)}
end
redis.call('HSET', KEYS[1], 'doc', ARGV[1], 'version', 1, 'status', ARGV[2])
for i = 5, #ARGV, 2 do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*',
    'kind', ARGV[i], 'data', ARGV[i + 1], 'v', 1)
end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return {1, 1}
