-- An invited agent attends. ARGV[3] agent.
-- Codes: 'ok', 'already', 'not_found', 'not_invited', 'ended', 'left'.
--#include mtg_common
if redis.call('EXISTS', S) == 0 then
  return reply('not_found')
end
expire_if_due()
local agent = ARGV[3]
local member = redis.call('HGET', M, agent)
if not member then
  return reply('not_invited')
end
if redis.call('HGET', S, 'status') == 'ended' then
  return reply('ended')
end
if member == 'attending' then
  return reply('already')
end
if member == 'left' then
  return reply('left')
end
local seq = redis.call('HINCRBY', S, 'seq', 1)
redis.call('HSET', M, agent, 'attending')
redis.call('ZADD', O, seq, agent)
emit('joined', agent, redis.call('HGET', S, 'turn'), {order = seq})
touch()
return reply('ok')
