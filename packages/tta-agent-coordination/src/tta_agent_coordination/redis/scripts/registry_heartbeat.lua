--#include registry_common
-- Renew one registration's liveness (and optionally its status, snapshot and state).
-- KEYS: 1 agent hash, 2 liveness zset, 3 events stream, 4 state string.
-- ARGV: 1 id, 2 owner, 3 ttl ms, 4 status ('' = unchanged), 5 snapshot flag,
-- 6 snapshot JSON, 7 state flag, 8 state JSON, 9 retention ms, 10 events maxlen,
-- 11 capability-set head, 12 type-set head.
-- Returns {'ok', now, expires_at, status_changed (1/0)}, {'gone'} (no record: never
-- registered or deregistered), {'replaced'} (another owner holds the id) or
-- {'expired'} (liveness ran out: the owner must register again). Only the owner's
-- token changes anything, so a late heartbeat can never bring back a removed agent.
local hkey, zset, events, skey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, owner = ARGV[1], ARGV[2]
local ttl = tonumber(ARGV[3])
local status = ARGV[4]
local retention = tonumber(ARGV[9])
local maxlen = tonumber(ARGV[10])
local cap_head, type_head = ARGV[11], ARGV[12]

local current = redis.call('HGET', hkey, 'owner')
if not current then return {'gone'} end
if current ~= owner then return {'replaced'} end
local now = now_ms()
if ARGV[7] == '1' and retention > 0 then
  redis.call('SET', skey, ARGV[8], 'PX', retention)
end
local score = redis.call('ZSCORE', zset, id)
if not score or tonumber(score) <= now then
  if score then
    expire_one(zset, events, id, hkey, now, retention, maxlen, cap_head, type_head)
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
