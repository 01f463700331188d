-- Shared helpers of the queue scripts (inlined by the loader; see redis/lua.py).
-- KEYS, in the order of QueueKeys.all_keys:
--   1..3 ready streams (HIGH, NORMAL, LOW)   4 leases   5 delayed   6 delayed:data
--   7 dead-letter stream                      8 dedupe   9 wake stream
--   10 lessees (hash token -> instance)      11 lessee index (zset "<instance> <token>")
-- ARGV of every script that includes this file starts with 1 the consumer group and
-- 2 the consumer name (CONSUMER_GROUP, CONSUMER_NAME in redis/keys.py, the one place they
-- are defined); a script's own arguments follow from ARGV[3]. Each script's arguments
-- and outcome are declared in Python beside it (redis/scripts/<script>.py).
-- A ready-stream entry holds: i message_id, m envelope JSON, a deliveries before this
-- entry, e last error, x expires_at (ms, 0 = never), t first enqueue time (ms).
-- A lease token is "<stream index>-<entry id>"; every delivery adds a new entry, so a
-- token names one delivery and can never settle a later one.
local GROUP = ARGV[1]
local CONSUMER = ARGV[2]
-- Score of a dedupe entry while its message is unsettled (2^53 - 1: "never expires").
local UNSETTLED = 9007199254740991
-- How long the wake stream outlives its last entry (ms). It only has to outlast the gap
-- between a receive script returning its last id and the blocked read covering it (a few
-- ms, seconds under load); after that it expires, so it never outlives its queue long.
local WAKE_TTL_MS = 300000
-- Messages moved by lease reclaims and expiries during this call, reported to the caller
-- so that a message store learns every lifecycle change: {message_id, first enqueue ms,
-- deliveries, 1 requeued | 2 dead-lettered, reason, failure type ('timeout', or
-- 'malformed' for an entry not in the library's format)}.
local MOVED = {}

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function to_table(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- The fields of an entry written by enqueue (i m a e x t, in that order) without
-- building a table per entry: the receive and ack hot paths. Anything else (an entry
-- written by another client) goes through to_table.
local function entry_fields(flat)
  if #flat == 12 and flat[1] == 'i' and flat[3] == 'm' and flat[5] == 'a'
      and flat[7] == 'e' and flat[9] == 'x' and flat[11] == 't' then
    return flat[2], flat[4], flat[6], flat[8], flat[10], flat[12]
  end
  local f = to_table(flat)
  return f.i, f.m, f.a, f.e, f.x, f.t
end

-- XREADGROUP's reply is {{key, entries}} (false when empty) on Redis. fakeredis (2.40)
-- shapes it for the *client's* protocol instead of the script's RESP2: with redis-py's
-- default RESP3 client, Lua gets the map flattened, {key, entries} ({} when empty). The
-- second branch is for fakeredis only; it cannot move to the test side without patching
-- fakeredis' private connection classes (see docs/testing.md, "FakeRedis and the real
-- server"). Delete it once fakeredis shapes XREADGROUP like XREAD inside scripts.
local function read_entries(reply)
  if not reply or not reply[1] then return {} end
  if type(reply[1]) == 'string' then return reply[2] or {} end
  return reply[1][2]
end

local function parse_token(token)
  local pidx, id = string.match(token, '^([123])%-(%d+%-%d+)$')
  if not pidx then return nil, nil end
  return tonumber(pidx), id
end

local function unsettled_count()
  return redis.call('XLEN', KEYS[1]) + redis.call('XLEN', KEYS[2])
    + redis.call('XLEN', KEYS[3]) + redis.call('ZCARD', KEYS[5])
end

local function enqueue(pidx, msgid, envelope, attempts, err, expires, first)
  local stream = KEYS[pidx]
  if redis.call('EXISTS', stream) == 0 then
    redis.call('XGROUP', 'CREATE', stream, GROUP, '0', 'MKSTREAM')
  end
  return redis.call('XADD', stream, '*', 'i', msgid, 'm', envelope, 'a', attempts,
    'e', err, 'x', expires, 't', first)
end

-- The dedupe set expires by itself once it holds no unsettled id: at the end of its
-- latest window (its highest score). So the set of a queue nobody sends to again goes
-- when its last window ends, with no sweep (issue 23). Every script that settles an id
-- calls this after; every script that marks one unsettled PERSISTs the set, so a set
-- with an unsettled id never has an expiry.
local function refresh_dedupe_expiry()
  local top = redis.call('ZRANGE', KEYS[8], -1, -1, 'WITHSCORES')
  if top[2] then
    local score = tonumber(top[2])
    if score < UNSETTLED then redis.call('PEXPIREAT', KEYS[8], score) end
  end
end

local function settle_dedupe(msgid, now, window_ms)
  if window_ms > 0 then
    redis.call('ZADD', KEYS[8], 'XX', now + window_ms, msgid)
  else
    redis.call('ZREM', KEYS[8], msgid)
  end
  refresh_dedupe_expiry()
end

local function dead_letter(pidx, f, attempts, err, failure, now, dlq_max, window_ms)
  redis.call('XADD', KEYS[7], 'MAXLEN', dlq_max, '*', 'i', f.i, 'm', f.m, 'p', pidx,
    'a', attempts, 'e', err, 'f', failure, 'd', now, 't', f.t)
  settle_dedupe(f.i, now, window_ms)
end

-- Validation of stored entries. An entry written by another client, a bug or a rolling
-- upgrade to another format is checked before anything moves it, and dead-lettered as
-- 'malformed' with its raw fields: never dropped, never a script error half-way.
local function is_digits(v)
  return type(v) == 'string' and string.find(v, '^%d+$') ~= nil
end

-- nil when the fields make a deliverable entry, else why not. x may be negative: before
-- expires_at was validated, an instant before 1970 was stored so (and means "never").
local function entry_problem(fi, fm, fa, fe, fx, ft)
  if type(fi) ~= 'string' or fi == '' then return 'no message id (field i)' end
  if type(fm) ~= 'string' or fm == '' then return 'no envelope (field m)' end
  if not is_digits(fa) then return 'deliveries (field a) missing or not a number' end
  if type(fe) ~= 'string' then return 'no last error (field e)' end
  if type(fx) ~= 'string' or not string.find(fx, '^%-?%d+$') then
    return 'expiry (field x) missing or not a number'
  end
  if not is_digits(ft) then return 'enqueue time (field t) missing or not a number' end
  return nil
end

-- Dead-letters a malformed entry (already removed from its stream) with failure
-- 'malformed': the reason in e, its stream entry id in o, and every raw field, as a JSON
-- object, in r (i, m, a, t are copied when usable). Reported in MOVED when it has a
-- message id and enqueue time, so that a message store learns it is dead.
local function dead_letter_malformed(pidx, entry_id, f, reason, now, dlq_max, window_ms)
  local msgid = type(f.i) == 'string' and f.i or ''
  local attempts = is_digits(f.a) and f.a or '0'
  redis.call('XADD', KEYS[7], 'MAXLEN', dlq_max, '*', 'i', msgid,
    'm', type(f.m) == 'string' and f.m or '', 'p', pidx, 'a', attempts,
    'e', 'malformed entry: ' .. reason, 'f', 'malformed', 'd', now,
    't', is_digits(f.t) and f.t or now, 'o', entry_id, 'r', cjson.encode(f))
  if msgid ~= '' then
    settle_dedupe(msgid, now, window_ms)
    if is_digits(f.t) then
      MOVED[#MOVED + 1] = {msgid, f.t, tonumber(attempts), 2, 'malformed entry: ' .. reason,
        'malformed'}
    end
  end
end

local function id_less(a, b)
  local ams, aseq = string.match(a, '^(%d+)%-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)%-(%d+)$')
  ams, bms = tonumber(ams), tonumber(bms)
  return ams < bms or (ams == bms and tonumber(aseq) < tonumber(bseq))
end

-- Recreates the consumer group of ready stream pidx (destroyed by someone else). Every
-- entry up to the newest one still leased has been delivered (deliveries are FIFO and a
-- settled entry is deleted), so the group starts there, with those entries read into
-- its PEL again: nothing leased is delivered twice, nothing undelivered is skipped.
local function restore_group(pidx)
  local stream = KEYS[pidx]
  local newest = nil
  for _, token in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
    local p, id = parse_token(token)
    if p == pidx and (not newest or id_less(newest, id)) then newest = id end
  end
  redis.call('XGROUP', 'CREATE', stream, GROUP, '0', 'MKSTREAM')
  if newest then
    local n = #redis.call('XRANGE', stream, '-', newest)
    if n > 0 then
      redis.call('XREADGROUP', 'GROUP', GROUP, CONSUMER, 'COUNT', n, 'STREAMS', stream, '>')
    end
  end
end

-- redis.call(...) on ready stream pidx; a NOGROUP error recreates the group and retries.
local function call_with_group(pidx, ...)
  local reply = redis.pcall(...)
  if type(reply) == 'table' and reply.err then
    if string.find(tostring(reply.err), 'NOGROUP', 1, true) then restore_group(pidx) end
    return redis.call(...)
  end
  return reply
end

-- Lessee records (type queues): which instance holds a lease, so that releasing a dead
-- instance's leases finds its leases in its type queue at once. Written by a receive
-- that names its consumer; every script that drops a lease calls drop_lessee (or
-- drop_lessees) with it, so the records never outnumber the leases.
local function lessee_member(lessee, token)
  return lessee .. ' ' .. token
end

local function record_lessees(lessee, tokens)
  if lessee == '' or #tokens == 0 then return end
  local fields, members = {}, {}
  for _, token in ipairs(tokens) do
    fields[#fields + 1] = token
    fields[#fields + 1] = lessee
    members[#members + 1] = 0
    members[#members + 1] = lessee_member(lessee, token)
  end
  redis.call('HSET', KEYS[10], unpack(fields))
  redis.call('ZADD', KEYS[11], unpack(members))
end

-- Drops the lessee records of tokens (no-op for a queue that has none: an instance queue).
local function drop_lessees(tokens)
  if #tokens == 0 or redis.call('EXISTS', KEYS[10]) == 0 then return end
  local owners = redis.call('HMGET', KEYS[10], unpack(tokens))
  local gone, members = {}, {}
  for i, token in ipairs(tokens) do
    if owners[i] then
      gone[#gone + 1] = token
      members[#members + 1] = lessee_member(owners[i], token)
    end
  end
  if #gone > 0 then
    redis.call('HDEL', KEYS[10], unpack(gone))
    redis.call('ZREM', KEYS[11], unpack(members))
  end
end

local function drop_lessee(token)
  drop_lessees({token})
end

-- The tokens recorded for lessee, oldest lease deadline first (ties by token, as the
-- leases zset orders them); a record whose lease is gone is dropped on the way.
local function lessee_tokens(lessee)
  local members = redis.call('ZRANGEBYLEX', KEYS[11], '[' .. lessee .. ' ', '(' .. lessee .. '!')
  local held, stale = {}, {}
  local deadline = {}
  local skip = #lessee + 2
  for _, member in ipairs(members) do
    local token = string.sub(member, skip)
    local score = redis.call('ZSCORE', KEYS[4], token)
    if score then
      held[#held + 1] = token
      deadline[token] = tonumber(score)
    else
      stale[#stale + 1] = token
    end
  end
  drop_lessees(stale)
  table.sort(held, function(a, b)
    if deadline[a] ~= deadline[b] then return deadline[a] < deadline[b] end
    return a < b
  end)
  return held
end

-- Removes one delivery (PEL entry, stream entry, lease); returns its fields or nil.
local function take_delivery(pidx, id, token)
  local stream = KEYS[pidx]
  redis.call('ZREM', KEYS[4], token)
  drop_lessee(token)
  local rng = redis.call('XRANGE', stream, id, id)
  -- pcall: a missing group (destroyed by someone else) has no PEL entry to remove.
  redis.pcall('XACK', stream, GROUP, id)
  if #rng == 0 then return nil end
  redis.call('XDEL', stream, id)
  return to_table(rng[1][2])
end

-- A lease that ended without a settle (expired, released, orphaned) counts as a
-- delivery: back to the tail of its ready stream, or to the DLQ on the last attempt.
-- Returns 1 when requeued, 2 when dead-lettered, 0 when the entry was already gone.
local function requeue_delivery(token, now, retry_attempts, dlq_max, window_ms, reason)
  local pidx, id = parse_token(token)
  if not pidx then
    redis.call('ZREM', KEYS[4], token)
    drop_lessee(token)
    return 0
  end
  local f = take_delivery(pidx, id, token)
  if not f then return 0 end
  local problem = entry_problem(f.i, f.m, f.a, f.e, f.x, f.t)
  if problem then
    dead_letter_malformed(pidx, id, f, problem, now, dlq_max, window_ms)
    return 2
  end
  local deliveries = tonumber(f.a) + 1
  if deliveries > retry_attempts then
    dead_letter(pidx, f, deliveries, reason, 'timeout', now, dlq_max, window_ms)
    MOVED[#MOVED + 1] = {f.i, f.t, deliveries, 2, reason, 'timeout'}
    return 2
  end
  enqueue(pidx, f.i, f.m, deliveries, reason, f.x, f.t)
  MOVED[#MOVED + 1] = {f.i, f.t, deliveries, 1, reason, 'timeout'}
  return 1
end

-- Returns {requeued, dead} for expired leases (every lease when force is true).
local function reclaim_leases(now, limit, retry_attempts, dlq_max, window_ms, force)
  if limit <= 0 then return 0, 0 end
  local tokens
  if force then
    tokens = redis.call('ZRANGE', KEYS[4], 0, limit - 1)
  else
    tokens = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, limit)
  end
  local requeued, dead = 0, 0
  local reason = force and 'lease released' or 'lease expired'
  for _, token in ipairs(tokens) do
    local r = requeue_delivery(token, now, retry_attempts, dlq_max, window_ms, reason)
    if r == 1 then requeued = requeued + 1 elseif r == 2 then dead = dead + 1 end
  end
  return requeued, dead
end

-- Returns {requeued, dead} for up to limit leases held by lessee (its instance died),
-- oldest deadline first: each counts as a delivery, as a forced release does.
local function release_lessee(lessee, now, limit, retry_attempts, dlq_max, window_ms)
  local requeued, dead = 0, 0
  for i, token in ipairs(lessee_tokens(lessee)) do
    if i > limit then break end
    local r = requeue_delivery(token, now, retry_attempts, dlq_max, window_ms,
      'lease released')
    if r == 1 then requeued = requeued + 1 elseif r == 2 then dead = dead + 1 end
  end
  return requeued, dead
end

-- Puts a message in the delayed set (a retry, a scheduled send, a restored one), due at
-- due (ms) with its data blob. When it falls due before everything already there (the
-- queue's next wake-up moves earlier), appends to the wake stream: a receive blocked on
-- the queue (it waits on the wake stream beside the ready streams, from the id its
-- script saw) then runs again and sleeps only until this due time. A message due after
-- the earliest one writes nothing: every blocked receive already wakes by then.
-- The first write is the HSET (deny-oom; see queue_send.lua).
local function schedule_delayed(msgid, due, blob)
  local first = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
  redis.call('HSET', KEYS[6], msgid, blob)
  redis.call('ZADD', KEYS[5], due, msgid)
  if not first[2] or due < tonumber(first[2]) then
    redis.call('XADD', KEYS[9], 'MAXLEN', 1, '*', 'd', due)
    redis.call('PEXPIRE', KEYS[9], WAKE_TTL_MS)
  end
end

-- The id of the wake stream's last entry ('0-0' when it has none), for a blocked receive.
local function wake_last_id()
  local last = redis.call('XREVRANGE', KEYS[9], '+', '-', 'COUNT', 1)
  return last[1] and last[1][1] or '0-0'
end

-- Moves due retries from the delayed set into their ready streams; returns the count.
local function promote_due(now, limit)
  local due = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, limit)
  for _, msgid in ipairs(due) do
    local blob = redis.call('HGET', KEYS[6], msgid)
    redis.call('ZREM', KEYS[5], msgid)
    redis.call('HDEL', KEYS[6], msgid)
    if blob then
      local d = cjson.decode(blob)
      enqueue(d.p, d.i, d.m, d.a, d.e, d.x, d.t)
    end
  end
  return #due
end
