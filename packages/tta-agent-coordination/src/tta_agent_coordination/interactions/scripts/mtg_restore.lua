-- Bring a meeting back from the record after Redis lost it (nothing is changed when it
-- still exists). ARGV[3] the meeting as JSON: host, status, turn, speaker, turn_ms,
-- max_turns, created, started (ms), members: list of {agent, state, order or -1}.
-- An active meeting's current turn gets a full turn from now (server clock).
-- Codes: 'ok', 'exists'.
--#include mtg_common
if redis.call('EXISTS', S) == 1 then
  return reply('exists')
end
local m = cjson.decode(ARGV[3])
local seq = 0
local speaker_seq = 0
for _, p in ipairs(m.members) do
  redis.call('HSET', M, p[1], p[2])
  if p[2] == 'attending' then
    local order = tonumber(p[3])
    if order < 0 then
      seq = seq + 1
      order = seq
    end
    seq = math.max(seq, order)
    redis.call('ZADD', O, order, p[1])
    if p[1] == m.speaker then
      speaker_seq = order
    end
  end
end
local deadline = 0
if m.status == 'active' then
  deadline = NOW + tonumber(m.turn_ms)
end
redis.call('HSET', S, 'host', m.host, 'status', m.status, 'turn', fmt(m.turn),
  'speaker', m.speaker, 'speaker_seq', fmt(speaker_seq), 'deadline', fmt(deadline),
  'turn_ms', fmt(m.turn_ms), 'max_turns', fmt(m.max_turns), 'seq', fmt(seq),
  'created', fmt(m.created), 'started', fmt(m.started))
if m.status == 'active' then
  emit('turn_changed', m.speaker, m.turn, {deadline_ms = deadline, reason = 'restored'})
end
touch()
return reply('ok')
