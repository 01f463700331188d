-- Delete a dead-letter stream (KEYS[1]); returns how many dead letters it held.
local n = redis.call('XLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return n
