-- renew: extend the current claim's lease to ARGV[2] ms from now (server time).
-- KEYS[1]  the record
-- ARGV[1]  the claim's token: nonce (16 bytes) and counter (8 bytes big-endian)
-- ARGV[2]  lease in ms (handed to PEXPIRE as sent, once checked)
-- Returns  "ok" | "stale" | "corrupt" | error "IDEMPOTENT ..." (invalid lease; nothing written)
local lease = tonumber(ARGV[2])
if not lease or lease < 1 or lease > MAX_DURATION or lease % 1 ~= 0 then
  return redis.error_reply('IDEMPOTENT invalid lease')
end
local record = redis.call('GET', KEYS[1])
if not record then return 'stale' end
if #record < 42 or string.byte(record, 1) ~= 2 then return 'corrupt' end
if string.sub(record, 19, 42) ~= ARGV[1] or string.byte(record, 2) ~= 112 then
  return 'stale'
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 'ok'
