-- Answer the other side's wait (reply).
-- KEYS[1] state hash, KEYS[2] log stream
-- ARGV[1] the replier's side ('a'|'b'), ARGV[2] correlation id of the wait answered
-- ('' for whatever wait stands), ARGV[3] the message (JSON), ARGV[4] retention ms,
-- ARGV[5] log cap
-- Returns {1, corr, addr, epoch} when accepted (the wait is over), {0} when the other
-- side does not wait (or waits for another turn): then nothing changed.
--#include common
local other = (ARGV[1] == 'a') and 'b' or 'a'
local f = redis.call('HMGET', KEYS[1], 'status', 'wait_' .. other, 'addr_' .. other, 'epoch',
  'until_' .. other)
if f[1] ~= 'open' or not f[2] or tonumber(f[5] or '0') < now_ms() then
  return {0} -- nobody waits (or the wait is past its deadline: its asker is gone)
end
if ARGV[2] ~= '' and ARGV[2] ~= f[2] then
  return {0}
end
redis.call('HDEL', KEYS[1], 'wait_' .. other, 'addr_' .. other, 'picked_' .. other,
  'until_' .. other)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'm', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {1, f[2], f[3] or '', f[4]}
