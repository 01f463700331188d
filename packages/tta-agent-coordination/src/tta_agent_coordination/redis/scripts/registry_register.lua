--#include registry_common
-- Register one agent under a new owner token.
-- KEYS: 1 agent hash, 2 liveness zset, 3 events stream.
-- ARGV: 1 id, 2 type, 3 owner, 4 name, 5 status, 6 caps JSON, 7 capability names,
-- 8 metadata JSON, 9 ttl ms, 10 takeover (1/0), 11 retention ms, 12 events maxlen,
-- 13 capability-set head, 14 type-set head.
-- Returns {'ok', registered_at, expires_at, replaced} where replaced is 'none',
-- 'alive' (a live holder was taken over), 'expired' (a holder expired unnoticed) or
-- 'ended' (a retained record of an earlier registration); or {'held', ms left}
-- when a live holder with another token keeps the id.
local hkey, zset, events = KEYS[1], KEYS[2], KEYS[3]
local id, agent_type, owner = ARGV[1], ARGV[2], ARGV[3]
local ttl = tonumber(ARGV[9])
local takeover = ARGV[10] == '1'
local retention = tonumber(ARGV[11])
local maxlen = tonumber(ARGV[12])
local cap_head, type_head = ARGV[13], ARGV[14]
local now = now_ms()

local score = redis.call('ZSCORE', zset, id)
local old = redis.call('HMGET', hkey, 'owner', 'type', 'capn', 'reg', 'exp')
local replaced = 'none'
if score and tonumber(score) > now then
  if old[1] == owner then
    -- the same registration again (a retry after an ambiguous failure): nothing to do
    return {'ok', old[4] or now, old[5] or score, 'none'}
  end
  if not takeover then return {'held', tonumber(score) - now} end
  replaced = 'alive'
  emit(events, maxlen, 'replaced', id, now, {'reason', 'takeover'})
elseif score then
  -- the holder's liveness ran out before any reaper saw it: report that expiry now
  expire_one(zset, events, id, hkey, now, retention, maxlen, cap_head, type_head)
  replaced = 'expired'
elseif old[1] then
  replaced = 'ended'
end
if old[1] or score then
  remove_indexes(id, old[2] or nil, old[3] or '', cap_head, type_head)
end

local expires = now + ttl
redis.call('DEL', hkey)
redis.call('HSET', hkey, 'id', id, 'type', agent_type, 'name', ARGV[4], 'owner', owner,
  'status', ARGV[5], 'caps', ARGV[6], 'capn', ARGV[7], 'meta', ARGV[8],
  'reg', now, 'hb', now, 'exp', expires)
redis.call('ZADD', zset, expires, id)
add_indexes(id, agent_type, ARGV[7], cap_head, type_head)
emit(events, maxlen, 'registered', id, now,
  {'name', ARGV[4], 'status', ARGV[5], 'replaced', replaced})
return {'ok', now, expires, replaced}
