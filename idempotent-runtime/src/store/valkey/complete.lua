#!lua
-- complete: store the result of the current claim; the record then lives for its TTL.
-- KEYS[1]  the record (layout in claim.lua)
-- ARGV[1]  TTL in ms
-- ARGV[2]  the completed record to write (state "c" or "n"; its fingerprint is the request's,
--          its nonce and counter name the claim)
-- Returns  "ok"       stored, or this claim was already completed (a no-op)
--          "stale"    not the current claim (lapsed, released, taken over, unknown)
--          "mismatch" the claim's, but another request's fingerprint; nothing written
--          "corrupt"  the stored record cannot be read; nothing written
--          error "IDEMPOTENT ..." invalid arguments; nothing written
-- The largest TTL or lease accepted: 365 days in ms (MAX_DURATION; a Rust test pins it).
local max = 31536000000
local ttl = tonumber(ARGV[1])
if not ttl or ttl < 1 or ttl > max or ttl % 1 ~= 0 then
  return redis.error_reply('IDEMPOTENT invalid ttl')
end
local new = ARGV[2]
local state = string.sub(new, 2, 2)
if #new < 42 or string.byte(new, 1) ~= 2 or (state ~= 'c' and state ~= 'n') then
  return redis.error_reply('IDEMPOTENT invalid record')
end
local record = redis.call('GET', KEYS[1])
if not record then return 'stale' end
if #record < 42 or string.byte(record, 1) ~= 2 then return 'corrupt' end
if string.sub(record, 19, 42) ~= string.sub(new, 19, 42) then return 'stale' end
if string.sub(record, 3, 18) ~= string.sub(new, 3, 18) then return 'mismatch' end
local current = string.sub(record, 2, 2)
if current == 'c' or current == 'n' then return 'ok' end
if current ~= 'p' then return 'corrupt' end
redis.call('SET', KEYS[1], new, 'PX', ttl)
return 'ok'
