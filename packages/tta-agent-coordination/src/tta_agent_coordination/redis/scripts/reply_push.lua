-- Deliver one reply to a requester's inbox, keeping the inbox bounded and expiring, so
-- replies nobody waits for (the requester timed out or died) never pile up.
-- KEYS[1] inbox list
-- ARGV[1] reply envelope (JSON), ARGV[2] inbox time to live (ms), ARGV[3] max replies kept
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
