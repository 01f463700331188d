-- Shared helpers of the registry scripts (inlined by the loader; see redis/lua.py).
-- Every key a script touches is passed in KEYS (names from redis/keys.py; the typed
-- wrappers in redis/agent_registry/scripts.py build them), so the scripts are correct on
-- Redis Cluster by construction. All registry keys also share the {_registry} slot.
-- An agent is named by its id "type:instance". The liveness zset scores each id by its
-- expiry (ms, server clock); an id is alive while its score is greater than now.
-- Agent hash fields: id, type, name, owner (lease token), status, caps (JSON), capn
-- (capability names separated by spaces), meta (JSON), snap (JSON), reg, hb, exp (ms).
--
-- Capability sets: a script that adds or removes index entries gets the set of each
-- capability it may touch in KEYS, named by a space-separated list in ARGV (same order).
-- Which sets an old record's entries are in is only known once its hash is read, so a
-- script that finds a capability the caller did not declare changes nothing and returns
-- {'undeclared', names}; the caller declares those sets too and runs it again.

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

-- The capability sets declared from KEYS[first] on: name -> key, and the key after them.
local function declared_sets(first, names)
  local sets, i = {}, first
  for name in string.gmatch(names or '', '%S+') do
    sets[name] = KEYS[i]
    i = i + 1
  end
  return sets, i
end

-- The names in capn (space-separated) whose set was not declared, space-separated ('' if none).
local function undeclared(capn, sets)
  local missing = {}
  for name in string.gmatch(capn or '', '%S+') do
    if not sets[name] then missing[#missing + 1] = name end
  end
  return table.concat(missing, ' ')
end

local function remove_indexes(id, type_set, capn, sets)
  redis.call('SREM', type_set, id)
  for name in string.gmatch(capn or '', '%S+') do
    redis.call('SREM', sets[name], id)
  end
end

local function add_indexes(id, type_set, capn, sets)
  redis.call('SADD', type_set, id)
  for name in string.gmatch(capn or '', '%S+') do
    redis.call('SADD', sets[name], id)
  end
end

-- Ends one registration whose liveness passed: out of the liveness set and indexes,
-- its record kept for retention_ms, one 'expired' event. Returns 1, or 0 when the id
-- was not in the liveness set (another reaper was first). The caller has checked that
-- every capability set of the record is declared.
local function expire_one(zset, events, id, hkey, type_set, sets, now, retention_ms, maxlen)
  if redis.call('ZREM', zset, id) == 0 then return 0 end
  local f = redis.call('HMGET', hkey, 'capn', 'hb', 'exp')
  remove_indexes(id, type_set, f[1] or '', sets)
  if redis.call('EXISTS', hkey) == 1 then
    if retention_ms > 0 then
      redis.call('PEXPIRE', hkey, retention_ms)
    else
      redis.call('DEL', hkey)
    end
  end
  emit(events, maxlen, 'expired', id, now,
    {'last_heartbeat', f[2] or '', 'expired_at', f[3] or ''})
  return 1
end
