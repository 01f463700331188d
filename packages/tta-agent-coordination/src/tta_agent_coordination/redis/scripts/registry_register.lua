--#include registry_common
-- Register one agent under a new owner token.
-- KEYS: 1 agent hash, 2 liveness zset, 3 events stream, 4 type set, 5.. capability sets.
-- ARGV: 1 id, 2 type, 3 owner, 4 name, 5 status, 6 caps JSON, 7 capability names,
-- 8 metadata JSON, 9 ttl ms, 10 takeover (1/0), 11 retention ms, 12 events maxlen,
-- 13 names of the capability sets in KEYS[5..].
-- Returns {'ok', registered_at, expires_at, replaced} where replaced is 'none',
-- 'alive' (a live holder was taken over), 'expired' (a holder expired unnoticed) or
-- 'ended' (a retained record of an earlier registration); {'held', ms left} when a
-- live holder with another token keeps the id; or {'undeclared', names} (nothing
-- changed) when the old record's capability sets were not all declared.
local hkey, zset, events, type_set = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, agent_type, owner = ARGV[1], ARGV[2], ARGV[3]
local ttl = tonumber(ARGV[9])
local takeover = ARGV[10] == '1'
local retention = tonumber(ARGV[11])
local maxlen = tonumber(ARGV[12])
local sets = declared_sets(5, ARGV[13])
local now = now_ms()

local score = redis.call('ZSCORE', zset, id)
local old = redis.call('HMGET', hkey, 'owner', 'capn', 'reg', 'exp')
local alive = score and tonumber(score) > now
if alive then
  if old[1] == owner then
    -- the same registration again (a retry after an ambiguous failure): nothing to do
    return {'ok', old[3] or now, old[4] or score, 'none'}
  end
  if not takeover then return {'held', tonumber(score) - now} end
end
local missing = undeclared(ARGV[7] .. ' ' .. (old[2] or ''), sets)
if missing ~= '' then return {'undeclared', missing} end

local replaced = 'none'
if alive then
  replaced = 'alive'
  emit(events, maxlen, 'replaced', id, now, {'reason', 'takeover'})
elseif score then
  -- the holder's liveness ran out before any reaper saw it: report that expiry now
  expire_one(zset, events, id, hkey, type_set, sets, now, retention, maxlen)
  replaced = 'expired'
elseif old[1] then
  replaced = 'ended'
end
if old[1] or score then
  remove_indexes(id, type_set, old[2] or '', sets)
end

local expires = now + ttl
redis.call('DEL', hkey)
redis.call('HSET', hkey, 'id', id, 'type', agent_type, 'name', ARGV[4], 'owner', owner,
  'status', ARGV[5], 'caps', ARGV[6], 'capn', ARGV[7], 'meta', ARGV[8],
  'reg', now, 'hb', now, 'exp', expires)
redis.call('ZADD', zset, expires, id)
add_indexes(id, type_set, ARGV[7], sets)
emit(events, maxlen, 'registered', id, now,
  {'name', ARGV[4], 'status', ARGV[5], 'replaced', replaced})
return {'ok', now, expires, replaced}
