-- complete: store the result of the current claim; the record then lives for its TTL.
-- KEYS[1]  the record
-- ARGV[1]  TTL in ms (handed to SET as sent, once checked)
-- ARGV[2]  the completed record to write (state "c" or "n"; its fingerprint is the request's,
--          its nonce and counter name the claim)
-- Returns  "ok"       stored, or this claim was already completed (a no-op)
--          "stale"    not the current claim (lapsed, released, taken over, unknown)
--          "mismatch" the claim's, but another request's fingerprint; nothing written
--          "corrupt"  the stored record cannot be read; nothing written
--          error "IDEMPOTENT ..." invalid arguments; nothing written
local ttl = tonumber(ARGV[1])
if not ttl or ttl < 1 or ttl > MAX_DURATION or ttl % 1 ~= 0 then
  return redis.error_reply('IDEMPOTENT invalid ttl')
end
local new = ARGV[2]
local done = string.byte(new, 2)
if #new < 42 or string.byte(new, 1) ~= 2 or (done ~= 99 and done ~= 110) then
  return redis.error_reply('IDEMPOTENT invalid record')
end
local record = redis.call('GET', KEYS[1])
if not record then return 'stale' end
if #record < 42 or string.byte(record, 1) ~= 2 then return 'corrupt' end
-- Fingerprint and token (bytes 3..42) compared at once; apart only when they differ.
if string.sub(record, 3, 42) ~= string.sub(new, 3, 42) then
  if string.sub(record, 19, 42) ~= string.sub(new, 19, 42) then return 'stale' end
  return 'mismatch'
end
local current = string.byte(record, 2)
if current == 99 or current == 110 then return 'ok' end
if current ~= 112 then return 'corrupt' end
redis.call('SET', KEYS[1], new, 'PX', ARGV[1])
return 'ok'
