-- Create a meeting. ARGV[3] host, ARGV[4] turn ms, ARGV[5] max turns (0: none),
-- ARGV[6] participants as a JSON list (the host attends from the start).
-- Codes: 'ok', 'exists'.
--#include mtg_common
if redis.call('EXISTS', S) == 1 then
  return reply('exists')
end
local host = ARGV[3]
redis.call('HSET', S, 'host', host, 'status', 'created', 'turn', '0', 'speaker', '',
  'speaker_seq', '0', 'deadline', '0', 'turn_ms', ARGV[4], 'max_turns', ARGV[5],
  'seq', '0', 'created', fmt(NOW))
redis.call('HSET', M, host, 'attending')
redis.call('ZADD', O, 0, host)
local invited = cjson.decode(ARGV[6])
for _, agent in ipairs(invited) do
  if agent ~= host then
    redis.call('HSET', M, agent, 'invited')
  end
end
emit('created', host, 0, {participants = invited, turn_ms = tonumber(ARGV[4]),
  max_turns = tonumber(ARGV[5])})
touch()
return reply('ok')
