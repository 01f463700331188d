-- Register an agent in an organization (moving it from another one).
-- KEYS[1] org hash, KEYS[2] the org's agent set, KEYS[3] agent hash,
-- KEYS[4] the agent set of the organization the caller read as its current one (KEYS[2]
-- when it had none)
-- ARGV[1] agent ("type:instance"), ARGV[2] org id, ARGV[3] name, ARGV[4] the current
-- organization the caller read ('' for none)
-- Returns 'no_org'; 'moved' when the current organization is no longer ARGV[4] (read
-- it again and retry; nothing changed); or 'new' / 'updated'.
--#include common
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 'no_org'
end
local old = redis.call('HGET', KEYS[3], 'organization') or ''
if old ~= ARGV[4] then
  return 'moved'
end
if old ~= '' and old ~= ARGV[2] then
  redis.call('SREM', KEYS[4], ARGV[1])
end
local created = redis.call('HSETNX', KEYS[3], 'created_ms', now_ms())
redis.call('HSET', KEYS[3], 'organization', ARGV[2], 'name', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
if created == 1 then
  return 'new'
end
return 'updated'
