-- What a waiter needs, in one step: {now_ms, status, turn, speaker, deadline_ms,
-- the agent's member state ('' if not invited), id of the last event ('0-0' if none)};
-- {} when the meeting does not exist. KEYS as every meeting script; ARGV[1] the agent.
--#include common
local f = redis.call('HMGET', KEYS[1], 'status', 'turn', 'speaker', 'deadline')
if not f[1] then
  return {}
end
local last = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)
local last_id = '0-0'
if #last > 0 then
  last_id = last[1][1]
end
return {string.format('%d', now_ms()), f[1], f[2], f[3], f[4],
  redis.call('HGET', KEYS[2], ARGV[1]) or '', last_id}
