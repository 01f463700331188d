--#include registry_common
-- The first registrations whose liveness passed (read only; registry_reap expires them).
-- KEYS: 1 liveness zset. ARGV: 1 limit.
-- Returns the ids, earliest expiry first.
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[1]))
