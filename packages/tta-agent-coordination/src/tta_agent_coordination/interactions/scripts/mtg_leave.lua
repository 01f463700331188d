-- An agent (not the host) leaves; a leaving speaker passes the turn on.
-- ARGV[3] agent. Codes: 'ok', 'not_found', 'not_invited', 'host', 'ended', 'left'.
--#include mtg_common
if redis.call('EXISTS', S) == 0 then
  return reply('not_found')
end
local agent = ARGV[3]
local member = redis.call('HGET', M, agent)
if not member then
  return reply('not_invited')
end
if redis.call('HGET', S, 'host') == agent then
  return reply('host')
end
expire_if_due()
local f = redis.call('HMGET', S, 'status', 'speaker', 'turn')
if f[1] == 'ended' then
  return reply('ended')
end
if member == 'left' then
  return reply('left')
end
redis.call('HSET', M, agent, 'left')
redis.call('ZREM', O, agent)
emit('left', agent, f[3], {})
if f[1] == 'active' and f[2] == agent then
  advance(false, 'left')
end
touch()
return reply('ok')
