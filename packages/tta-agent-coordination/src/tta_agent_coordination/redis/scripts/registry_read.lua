--#include registry_common
-- Read the records of given ids in one round trip, with the server time to judge
-- liveness. The caller picks the ids (its own, or the members of the liveness set or an
-- index read just before) and passes each one's agent hash.
-- KEYS: 1 liveness zset, 2.. the agent hash of each id (same order as the ids).
-- ARGV: 1 alive only (1/0), 2 listed only (1/0: leave out ids not in the liveness set),
-- 3.. ids.
-- Returns {now, id, expiry or '', {hash fields}, id, ...}; ids without a record are
-- left out.
local zset = KEYS[1]
local alive_only, listed_only = ARGV[1] == '1', ARGV[2] == '1'
local now = now_ms()
local out = {now}

for i = 3, #ARGV do
  local id = ARGV[i]
  local score = redis.call('ZSCORE', zset, id)
  local alive = score and tonumber(score) > now
  if not (alive_only and not alive) and not (listed_only and not score) then
    local h = redis.call('HGETALL', KEYS[i - 1])
    if #h > 0 then
      out[#out + 1] = id
      out[#out + 1] = score or ''
      out[#out + 1] = h
    end
  end
end
return out
