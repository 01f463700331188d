-- Shared helpers of the registry scripts (inlined by the loader; see redis/lua.py).
-- Every registry key lives in the {_registry} slot, so one script may span agents.
-- An agent is named by its id "type:instance". Its hash is AGENT_HEAD .. id, the set of
-- a capability is CAP_HEAD .. name, the set of an agent type is TYPE_HEAD .. type (the
-- heads come from redis/keys.py). The liveness zset scores each id by its expiry (ms,
-- server clock); an id is alive while its score is greater than now.
-- Agent hash fields: id, type, name, owner (lease token), status, caps (JSON), capn
-- (capability names separated by spaces), meta (JSON), snap (JSON), reg, hb, exp (ms).

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Appends an event to the bounded stream (nothing when maxlen is 0: events disabled).
local function emit(events, maxlen, kind, id, now, extra)
  if maxlen <= 0 then return false end
  return redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*',
    'k', kind, 'a', id, 't', now, unpack(extra))
end

local function type_of(id)
  return string.match(id, '^([^:]+):') or id
end

local function remove_indexes(id, agent_type, capn, cap_head, type_head)
  redis.call('SREM', type_head .. (agent_type or type_of(id)), id)
  for name in string.gmatch(capn or '', '%S+') do
    redis.call('SREM', cap_head .. name, id)
  end
end

local function add_indexes(id, agent_type, capn, cap_head, type_head)
  redis.call('SADD', type_head .. agent_type, id)
  for name in string.gmatch(capn or '', '%S+') do
    redis.call('SADD', cap_head .. name, id)
  end
end

-- Ends one registration whose liveness passed: out of the liveness set and indexes,
-- its record kept for retention_ms, one 'expired' event. Returns 1, or 0 when the id
-- was not in the liveness set (another reaper was first).
local function expire_one(zset, events, id, hkey, now, retention_ms, maxlen, cap_head, type_head)
  if redis.call('ZREM', zset, id) == 0 then return 0 end
  local f = redis.call('HMGET', hkey, 'type', 'capn', 'hb', 'exp')
  remove_indexes(id, f[1] or nil, f[2] or '', cap_head, type_head)
  if redis.call('EXISTS', hkey) == 1 then
    if retention_ms > 0 then
      redis.call('PEXPIRE', hkey, retention_ms)
    else
      redis.call('DEL', hkey)
    end
  end
  emit(events, maxlen, 'expired', id, now,
    {'last_heartbeat', f[3] or '', 'expired_at', f[4] or ''})
  return 1
end
