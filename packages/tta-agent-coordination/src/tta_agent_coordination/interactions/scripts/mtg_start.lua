-- The host starts the meeting with its message (turn 0); turn 1 begins.
-- ARGV[3] host, ARGV[4] message payload (JSON), ARGV[5] next speaker ('' round robin).
-- Codes: 'ok', 'not_found', 'not_host', 'state', 'bad_next'.
--#include mtg_common
if redis.call('EXISTS', S) == 0 then
  return reply('not_found')
end
if redis.call('HGET', S, 'host') ~= ARGV[3] then
  return reply('not_host')
end
if redis.call('HGET', S, 'status') ~= 'created' then
  return reply('state')
end
if not valid_next(ARGV[5]) then
  return reply('bad_next')
end
redis.call('HSET', S, 'status', 'active', 'started', fmt(NOW))
emit('started', ARGV[3], 0, {})
emit('spoke', ARGV[3], 0, {payload = ARGV[4], next_speaker = ARGV[5]})
advance(ARGV[5], 'started')
touch()
return reply('ok')
