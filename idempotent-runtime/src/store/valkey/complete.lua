-- complete: store the result of the current claim; the record then lives for its TTL.
-- KEYS[1]  the record
-- ARGV[1]  TTL in ms
-- ARGV[2]  the completed record to write (state "c" or "n"; its fingerprint is the request's,
--          its nonce and counter name the claim)
-- Returns  "ok"       stored, or this claim was already completed (a no-op)
--          "stale"    not the current claim (lapsed, released, taken over, unknown)
--          "mismatch" the claim's, but another request's fingerprint; nothing written
--          "corrupt"  the stored record cannot be read; nothing written
--          error "IDEMPOTENT ..." invalid arguments; nothing written
local ttl = duration(ARGV[1])
if not ttl then return redis.error_reply('IDEMPOTENT invalid ttl') end
local new = ARGV[2]
if not readable(new) or (state(new) ~= 'c' and state(new) ~= 'n') then
  return redis.error_reply('IDEMPOTENT invalid record')
end
local record = redis.call('GET', KEYS[1])
if not record then return 'stale' end
if not readable(record) then return 'corrupt' end
if token(record) ~= token(new) then return 'stale' end
if fingerprint(record) ~= fingerprint(new) then return 'mismatch' end
local current = state(record)
if current == 'c' or current == 'n' then return 'ok' end
if current ~= 'p' then return 'corrupt' end
redis.call('SET', KEYS[1], new, 'PX', ttl)
return 'ok'
