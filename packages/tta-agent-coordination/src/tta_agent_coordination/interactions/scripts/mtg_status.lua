-- Read a meeting in one step: {now_ms, state (flat), members (flat), order (flat)}.
-- KEYS[1] state hash, KEYS[2] members hash, KEYS[3] order zset.
--#include common
return {string.format('%d', now_ms()), redis.call('HGETALL', KEYS[1]),
  redis.call('HGETALL', KEYS[2]), redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')}
