-- Register or update an organization.
-- KEYS[1] org hash, KEYS[2] set of every organization
-- ARGV[1] org id, ARGV[2] name, ARGV[3] accepts_from (JSON list)
-- Returns 1 when the organization is new, 0 when it was updated.
--#include common
local created = redis.call('HSETNX', KEYS[1], 'created_ms', now_ms())
redis.call('HSET', KEYS[1], 'name', ARGV[2], 'accepts_from', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
return created
