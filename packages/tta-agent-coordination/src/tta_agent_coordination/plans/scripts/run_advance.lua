-- Apply one transition of a run by compare-and-set on its version.
-- KEYS[1] state hash, KEYS[2] event stream (one hash tag).
-- ARGV[1] expected version, ARGV[2] new state JSON, ARGV[3] new status,
-- ARGV[4] events MAXLEN, ARGV[5] ttl ms (0: keep the keys), ARGV[6..] event kind, data...
-- Returns {1, new version} when applied, {0, current version} when the version moved
-- on (another driver applied something first: reload and decide again), {-1, 0} when
-- the run does not exist (expired or never created).
local current = redis.call('HGET', KEYS[1], 'version')
if not current then
  return {-1, 0}
end
if current ~= ARGV[1] then
  return {0, tonumber(current)}
end
local version = tonumber(current) + 1
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'version', version, 'status', ARGV[3])
for i = 6, #ARGV, 2 do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*',
    'kind', ARGV[i], 'data', ARGV[i + 1], 'v', version)
end
local ttl = tonumber(ARGV[5])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return {1, version}
