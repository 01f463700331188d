-- The current speaker speaks; the next turn begins.
-- ARGV[3] agent, ARGV[4] message payload (JSON), ARGV[5] next speaker ('' round robin).
-- Codes: 'ok', 'not_found', 'not_invited', 'state', 'late', 'not_your_turn', 'bad_next'.
-- A message of a speaker whose turn is past its deadline (or was just timed out) is
-- recorded as a 'late' event and refused.
--#include mtg_common
if redis.call('EXISTS', S) == 0 then
  return reply('not_found')
end
local agent = ARGV[3]
local member = redis.call('HGET', M, agent)
if not member then
  return reply('not_invited')
end
local f = redis.call('HMGET', S, 'status', 'speaker', 'deadline', 'turn')
if f[1] ~= 'active' then
  return reply('state')
end
if f[2] == agent and NOW >= tonumber(f[3]) then
  emit('late', agent, f[4], {payload = ARGV[4]})
  expire_if_due()
  touch()
  return reply('late')
end
expire_if_due()
f = redis.call('HMGET', S, 'status', 'speaker', 'turn', 'to_agent', 'to_turn')
if f[2] ~= agent then
  if f[4] == agent and tonumber(f[5] or '-1') + 1 == tonumber(f[3]) then
    emit('late', agent, f[5], {payload = ARGV[4]})
    touch()
    return reply('late')
  end
  touch()
  return reply(f[1] == 'active' and 'not_your_turn' or 'state')
end
if not valid_next(ARGV[5]) then
  return reply('bad_next')
end
emit('spoke', agent, f[3], {payload = ARGV[4], next_speaker = ARGV[5]})
advance(ARGV[5], 'spoke')
touch()
return reply('ok')
