--#include registry_common
-- Renew one registration's liveness (and optionally its status, snapshot and state).
-- KEYS: 1 agent hash, 2 liveness zset, 3 events stream, 4 state string, 5 type set,
-- 6.. capability sets.
-- ARGV: 1 id, 2 owner, 3 ttl ms, 4 status ('' = unchanged), 5 snapshot flag,
-- 6 snapshot JSON, 7 state flag, 8 state JSON, 9 retention ms, 10 events maxlen,
-- 11 names of the capability sets in KEYS[6..].
-- Returns {'ok', now, expires_at, status_changed (1/0)}, {'gone'} (no record: never
-- registered or deregistered), {'replaced'} (another owner holds the id),
-- {'expired'} (liveness ran out: the owner must register again) or {'undeclared',
-- names} (nothing changed; declare those capability sets). Only the owner's token
-- changes anything, so a late heartbeat can never bring back a removed agent.
local hkey, zset, events, skey, type_set = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, owner = ARGV[1], ARGV[2]
local ttl = tonumber(ARGV[3])
local status = ARGV[4]
local retention = tonumber(ARGV[9])
local maxlen = tonumber(ARGV[10])
local sets = declared_sets(6, ARGV[11])

local current = redis.call('HMGET', hkey, 'owner', 'capn')
if not current[1] then return {'gone'} end
if current[1] ~= owner then return {'replaced'} end
local now = now_ms()
local score = redis.call('ZSCORE', zset, id)
local expired = not score or tonumber(score) <= now
if expired and score then
  local missing = undeclared(current[2], sets)
  if missing ~= '' then return {'undeclared', missing} end
end
if ARGV[7] == '1' and retention > 0 then
  redis.call('SET', skey, ARGV[8], 'PX', retention)
end
if expired then
  if score then
    expire_one(zset, events, id, hkey, type_set, sets, now, retention, maxlen)
  end
  return {'expired'}
end

local expires = now + ttl
redis.call('ZADD', zset, expires, id)
redis.call('HSET', hkey, 'hb', now, 'exp', expires)
if ARGV[5] == '1' then redis.call('HSET', hkey, 'snap', ARGV[6]) end
local changed = 0
if status ~= '' then
  local old = redis.call('HGET', hkey, 'status') or ''
  if old ~= status then
    redis.call('HSET', hkey, 'status', status)
    emit(events, maxlen, 'status_changed', id, now, {'old', old, 'new', status})
    changed = 1
  end
end
return {'ok', now, expires, changed}
