--#include registry_common
-- Read records in one round trip, with the server time to judge liveness.
-- KEYS: 1 liveness zset, then (mode 'sets') the index sets to intersect.
-- ARGV: 1 mode ('all' = every id in the liveness set, 'ids' = the ids in ARGV[4..],
-- 'sets' = the members of the intersection of KEYS[2..]), 2 alive only (1/0),
-- 3 agent-hash head, 4.. ids.
-- Returns {now, id, expiry or '', {hash fields}, id, ...}; ids without a record are
-- left out.
local zset = KEYS[1]
local mode, alive_only, agent_head = ARGV[1], ARGV[2] == '1', ARGV[3]
local now = now_ms()
local out = {now}

local function add(id, score)
  local alive = score and tonumber(score) > now
  if alive_only and not alive then return end
  local h = redis.call('HGETALL', agent_head .. id)
  if #h == 0 then return end
  out[#out + 1] = id
  out[#out + 1] = score or ''
  out[#out + 1] = h
end

if mode == 'all' then
  local z = redis.call('ZRANGE', zset, 0, -1, 'WITHSCORES')
  for i = 1, #z, 2 do add(z[i], z[i + 1]) end
elseif mode == 'ids' then
  for i = 4, #ARGV do add(ARGV[i], redis.call('ZSCORE', zset, ARGV[i])) end
else
  local members
  if #KEYS == 2 then
    members = redis.call('SMEMBERS', KEYS[2])
  else
    local sets = {}
    for i = 2, #KEYS do sets[#sets + 1] = KEYS[i] end
    members = redis.call('SINTER', unpack(sets))
  end
  for _, id in ipairs(members) do add(id, redis.call('ZSCORE', zset, id)) end
end
return out
