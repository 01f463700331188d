-- Time the current turn out if its deadline passed (server clock), compare-and-set on
-- the turn number. ARGV[3] the turn the caller saw ('' any).
-- Codes: 'timed_out', 'noop', 'not_found'.
--#include mtg_common
if redis.call('EXISTS', S) == 0 then
  return reply('not_found')
end
local turn = redis.call('HGET', S, 'turn')
if ARGV[3] ~= '' and ARGV[3] ~= turn then
  return reply('noop')
end
if expire_if_due() then
  touch()
  return reply('timed_out')
end
return reply('noop')
