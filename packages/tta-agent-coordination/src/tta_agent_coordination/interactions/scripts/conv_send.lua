-- One side of a pair starts waiting for the other (send_and_wait).
-- KEYS[1] state hash, KEYS[2] log stream
-- ARGV[1] a, ARGV[2] b (the pair, sorted), ARGV[3] sender side ('a' or 'b'),
-- ARGV[4] correlation id of this wait, ARGV[5] the sender's reply address (JSON),
-- ARGV[6] the message (JSON), ARGV[7] retention ms, ARGV[8] log cap, ARGV[9] how long
-- the wait lasts at most (ms): after that it no longer counts (its asker timed out, or
-- died), so a crashed asker never leaves its side busy
-- Returns {outcome, epoch, other_corr, other_addr}; outcome is
--   'busy'     this side already waits (nothing changed),
--   'queued'   the message goes to the recipient's handler,
--   'answered' the other side was waiting for this one: the message is its answer.
-- A conversation that is new, or was ended, opens with a new epoch (> every earlier
-- one of the pair, also after its keys expired: it starts from the server clock).
--#include common
local side = ARGV[3]
local other = (side == 'a') and 'b' or 'a'
local now = now_ms()
local f = redis.call('HMGET', KEYS[1], 'status', 'epoch',
  'wait_' .. side, 'wait_' .. other, 'addr_' .. other, 'until_' .. side, 'until_' .. other)
local epoch = tonumber(f[2]) or 0
if f[3] and tonumber(f[6] or '0') < now then
  f[3] = false -- a wait past its deadline: its asker is gone
end
if f[4] and tonumber(f[7] or '0') < now then
  f[4] = false
end
if f[1] ~= 'open' then
  epoch = math.max(now, epoch + 1)
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'a', ARGV[1], 'b', ARGV[2], 'status', 'open',
    'epoch', string.format('%d', epoch))
  f[3] = false
  f[4] = false
end
if f[3] then
  return {'busy', string.format('%d', epoch), '', ''}
end
local outcome, other_corr, other_addr = 'queued', '', ''
if f[4] then
  outcome, other_corr, other_addr = 'answered', f[4], f[5] or ''
end
-- The other side's wait is answered now, or was stale (or absent): gone either way.
redis.call('HDEL', KEYS[1], 'wait_' .. other, 'addr_' .. other, 'picked_' .. other,
  'until_' .. other)
redis.call('HSET', KEYS[1], 'wait_' .. side, ARGV[4], 'addr_' .. side, ARGV[5],
  'picked_' .. side, (outcome == 'answered') and '1' or '0',
  'until_' .. side, string.format('%d', now + tonumber(ARGV[9])))
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*', 'm', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
return {outcome, string.format('%d', epoch), other_corr, other_addr}
