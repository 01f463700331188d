-- The host ends the meeting. ARGV[3] host. Codes: 'ok', 'not_found', 'not_host', 'ended'.
--#include mtg_common
if redis.call('EXISTS', S) == 0 then
  return reply('not_found')
end
if redis.call('HGET', S, 'host') ~= ARGV[3] then
  return reply('not_host')
end
if redis.call('HGET', S, 'status') == 'ended' then
  return reply('ended')
end
finish('host', ARGV[3])
touch()
return reply('ok')
