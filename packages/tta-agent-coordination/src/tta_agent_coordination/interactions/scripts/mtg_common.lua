-- Shared by the meeting scripts (inlined with --#include mtg_common).
-- KEYS[1] state hash, KEYS[2] members hash, KEYS[3] order zset, KEYS[4] events stream
-- ARGV[1] events cap, ARGV[2] retention ms; each script's own arguments follow.
-- Every script replies {code, status, turn, speaker, deadline_ms, now_ms, id1, ev1, ...}:
-- the state after it ran and the events it added (stream id, JSON), in order.
--#include common
local S, M, O, E = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local NOW = now_ms()
local out = {}

local function fmt(n)
  return string.format('%d', n)
end

local function emit(etype, agent, turn, extra)
  local ev = extra or {}
  ev['type'] = etype
  ev['agent'] = agent or ''
  ev['turn'] = tonumber(turn) or 0
  ev['at_ms'] = NOW
  local body = cjson.encode(ev)
  local id = redis.call('XADD', E, 'MAXLEN', '~', ARGV[1], '*', 'e', body)
  out[#out + 1] = id
  out[#out + 1] = body
end

local function reply(code)
  local f = redis.call('HMGET', S, 'status', 'turn', 'speaker', 'deadline')
  local r = {code, f[1] or '', f[2] or '0', f[3] or '', f[4] or '0', fmt(NOW)}
  for i = 1, #out do
    r[#r + 1] = out[i]
  end
  return r
end

local function touch()
  for _, k in ipairs({S, M, O, E}) do
    redis.call('PEXPIRE', k, ARGV[2])
  end
end

local function finish(reason, by)
  local turn = redis.call('HGET', S, 'turn') or '0'
  redis.call('HSET', S, 'status', 'ended', 'ended', fmt(NOW), 'end_reason', reason,
    'speaker', '', 'deadline', '0')
  emit('ended', by, turn, {reason = reason})
end

-- The attending agent after join sequence `seq` (round robin), wrapping around.
local function next_after(seq)
  local r = redis.call('ZRANGEBYSCORE', O, '(' .. seq, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #r == 0 then
    r = redis.call('ZRANGE', O, 0, 0, 'WITHSCORES')
  end
  return r[1], r[2]
end

-- The next turn (turn + 1) goes to `nxt` (an attending agent) or round robin; past
-- max_turns the meeting ends instead.
local function advance(nxt, reason)
  local f = redis.call('HMGET', S, 'turn', 'max_turns', 'speaker_seq', 'turn_ms')
  local turn = tonumber(f[1]) + 1
  local max_turns = tonumber(f[2]) or 0
  if max_turns > 0 and turn > max_turns then
    redis.call('HSET', S, 'turn', fmt(turn))
    finish('max_turns', '')
    return
  end
  local seq
  if nxt and nxt ~= '' then
    seq = redis.call('ZSCORE', O, nxt)
  else
    nxt, seq = next_after(f[3] or '0')
  end
  local deadline = NOW + tonumber(f[4])
  redis.call('HSET', S, 'turn', fmt(turn), 'speaker', nxt, 'speaker_seq', seq,
    'deadline', fmt(deadline))
  emit('turn_changed', nxt, turn, {deadline_ms = deadline, reason = reason})
end

-- Time the current turn out when its deadline passed (server clock): the compare-and-set
-- every caller does first, so whoever notices first advances it, once.
local function expire_if_due()
  local f = redis.call('HMGET', S, 'status', 'deadline', 'turn', 'speaker')
  if f[1] == 'active' and NOW >= tonumber(f[2]) then
    emit('timed_out', f[4], f[3], {deadline_ms = tonumber(f[2])})
    redis.call('HSET', S, 'to_agent', f[4], 'to_turn', f[3])
    advance(false, 'timed_out')
    return true
  end
  return false
end

-- An attending next speaker, or false (nil / '' means round robin).
local function valid_next(nxt)
  if nxt == nil or nxt == '' then
    return true
  end
  return redis.call('HGET', M, nxt) == 'attending'
end
