-- renew: extend the current claim's lease to ARGV[2] ms from now (server time).
-- KEYS[1]  the record
-- ARGV[1]  the claim's token: nonce (16 bytes) and counter (8 bytes big-endian)
-- ARGV[2]  lease in ms
-- Returns  "ok" | "stale" | "corrupt" | error "IDEMPOTENT ..." (invalid lease; nothing written)
local lease = duration(ARGV[2])
if not lease then return redis.error_reply('IDEMPOTENT invalid lease') end
local record = redis.call('GET', KEYS[1])
if not record then return 'stale' end
if not readable(record) then return 'corrupt' end
if token(record) ~= ARGV[1] or state(record) ~= 'p' then return 'stale' end
redis.call('PEXPIRE', KEYS[1], lease)
return 'ok'
