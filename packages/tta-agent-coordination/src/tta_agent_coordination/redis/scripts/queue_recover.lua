--#include queue_common
-- Recover one queue. ARGV (after the group and consumer of queue_common):
-- 3 retry_attempts, 4 dlq max, 5 dedupe window ms, 6 orphan idle ms, 7 limit,
-- 8 force (1 = release every lease, expired or not), 9 lessee ('' = none): release every
-- lease that instance holds in this (type) queue first, expired or not.
-- Orphans are PEL entries without a lease (a reservation made outside our scripts and
-- interrupted): idle longer than the orphan threshold, they are treated as expired.
-- A ready stream without its consumer group gets it back (restore_group); an entry not in
-- the library's format is dead-lettered as 'malformed', never dropped (queue_common).
-- A queue left with nothing at all (no ready, leased, delayed or dead message) has its
-- empty streams deleted, so queues of agents that came and went leave no keys behind;
-- the next send recreates them.
-- Returns {requeued, dead-lettered, promoted, more, removed, moved}; moved as in
-- queue_common; more = 1 when the limit was
-- hit, removed = 1 when the queue was empty and its keys were deleted.
local now = now_ms()
local retry_attempts = tonumber(ARGV[3])
local dlq_max = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local orphan_idle = tonumber(ARGV[6])
local limit = tonumber(ARGV[7])
local force = ARGV[8] == '1'
local lessee = ARGV[9] or ''
local requeued, dead = 0, 0
if lessee ~= '' then
  requeued, dead = release_lessee(lessee, now, limit, retry_attempts, dlq_max, window)
end
local r, d = reclaim_leases(now, limit - requeued - dead, retry_attempts, dlq_max, window,
  force)
requeued, dead = requeued + r, dead + d
for pidx = 1, 3 do
  local stream = KEYS[pidx]
  if redis.call('EXISTS', stream) == 1 then
    local pending = call_with_group(pidx, 'XPENDING', stream, GROUP, 'IDLE', orphan_idle,
      '-', '+', limit)
    for _, p in ipairs(pending) do
      local token = pidx .. '-' .. p[1]
      if not redis.call('ZSCORE', KEYS[4], token) then
        local r = requeue_delivery(token, now, retry_attempts, dlq_max, window, 'lease lost')
        if r == 1 then requeued = requeued + 1 elseif r == 2 then dead = dead + 1 end
      end
    end
  end
end
local promoted = promote_due(now, limit)
local more = 0
if requeued + dead >= limit or promoted >= limit then more = 1 end
local removed = 0
if more == 0 and unsettled_count() == 0 and redis.call('ZCARD', KEYS[4]) == 0
    and redis.call('EXISTS', KEYS[7]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[9], KEYS[10], KEYS[11])
  -- Keep ids still inside their dedupe window (a resend must stay a duplicate, and a
  -- store restore relies on it); the set goes once they have all expired.
  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now)
  if redis.call('ZCARD', KEYS[8]) == 0 then redis.call('DEL', KEYS[8]) end
  removed = 1
end
return {requeued, dead, promoted, more, removed, MOVED}
