--#include registry_common
-- Remove one registration (its owner's, or any with force) and keep its final state.
-- KEYS: 1 agent hash, 2 liveness zset, 3 events stream, 4 state string, 5 type set,
-- 6.. capability sets.
-- ARGV: 1 id, 2 owner, 3 force (1/0), 4 state flag, 5 state JSON, 6 retention ms,
-- 7 events maxlen, 8 reason, 9 names of the capability sets in KEYS[6..].
-- Returns {'ok', was_alive (1/0)}, {'gone'} (no record), {'replaced'} (another owner
-- holds the id) or {'undeclared', names} (declare those capability sets); nothing
-- changed unless 'ok'.
local hkey, zset, events, skey, type_set = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, owner = ARGV[1], ARGV[2]
local force = ARGV[3] == '1'
local retention = tonumber(ARGV[6])
local maxlen = tonumber(ARGV[7])
local sets = declared_sets(6, ARGV[9])

local f = redis.call('HMGET', hkey, 'owner', 'capn')
if not f[1] then return {'gone'} end
if not force and f[1] ~= owner then return {'replaced'} end
local missing = undeclared(f[2], sets)
if missing ~= '' then return {'undeclared', missing} end
local now = now_ms()
if ARGV[4] == '1' and retention > 0 then
  redis.call('SET', skey, ARGV[5], 'PX', retention)
end
local score = redis.call('ZSCORE', zset, id)
local was_alive = 0
if score and tonumber(score) > now then was_alive = 1 end
redis.call('ZREM', zset, id)
remove_indexes(id, type_set, f[2] or '', sets)
redis.call('DEL', hkey)
emit(events, maxlen, 'deregistered', id, now, {'reason', ARGV[8], 'was_alive', was_alive})
return {'ok', was_alive}
