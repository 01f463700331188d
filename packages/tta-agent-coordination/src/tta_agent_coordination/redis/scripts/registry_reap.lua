--#include registry_common
-- Expire the given registrations whose liveness passed, atomically: each is reported by
-- exactly one 'expired' event however many reapers run at once. The caller found them
-- with registry_due and read each one's capability names, so that it can pass every key
-- here; a candidate renewed or re-registered meanwhile is left alone.
-- KEYS: 1 liveness zset, 2 events stream, then for each candidate: its agent hash, its
-- type set and its capability sets.
-- ARGV: 1 retention ms, 2 events maxlen, 3 number of candidates n, then for each
-- candidate: its id and the names of its capability sets; then the ids to drop from the
-- liveness set only (members that are not an agent id, so they have no other key).
-- Returns {skipped (1/0: a candidate had capability sets not declared), id...} with
-- the ids expired by this call.
local zset, events = KEYS[1], KEYS[2]
local retention = tonumber(ARGV[1])
local maxlen = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local now = now_ms()
local out = {0}
local k, a = 3, 4
for _ = 1, n do
  local id, names = ARGV[a], ARGV[a + 1]
  local hkey, type_set = KEYS[k], KEYS[k + 1]
  local sets, after = declared_sets(k + 2, names)
  a, k = a + 2, after
  local score = redis.call('ZSCORE', zset, id)
  if score and tonumber(score) <= now then
    if undeclared(redis.call('HGET', hkey, 'capn'), sets) ~= '' then
      out[1] = 1
    elseif expire_one(zset, events, id, hkey, type_set, sets, now, retention, maxlen) == 1 then
      out[#out + 1] = id
    end
  end
end
for i = a, #ARGV do
  local score = redis.call('ZSCORE', zset, ARGV[i])
  if score and tonumber(score) <= now then redis.call('ZREM', zset, ARGV[i]) end
end
return out
