#!lua
-- claim: take the key when no live record holds it; otherwise return the live record.
-- A record is one string value (format.rs): version byte 1, state byte ("p" processing,
-- "c" completed, "n" done-not-replayable), fingerprint (16 bytes), claim nonce (16 bytes,
-- bytes 19..34), TTL in ms (8 bytes), then for "c" the response. A processing record expires
-- with its lease (server time), so a record that exists is live.
-- KEYS[1]  the record
-- ARGV[1]  the processing record to write (42 bytes, state "p")
-- ARGV[2]  TTL in ms (kept for the completion)
-- ARGV[3]  lease in ms
-- Returns  {"claimed", seconds, microseconds}  the caller holds the claim; the server time
--                                              is its fencing counter
--          {"exists", record}    a live record, as stored (the caller decodes it)
--          error "IDEMPOTENT ..." invalid arguments; nothing written
local record = redis.call('GET', KEYS[1])
if record then return {'exists', record} end
-- Arguments are checked before the first write (a replay needs none of them).
-- The largest TTL or lease accepted: 365 days in ms (MAX_DURATION; a Rust test pins it).
local max = 31536000000
local ttl, lease = tonumber(ARGV[2]), tonumber(ARGV[3])
if not ttl or ttl < 1 or ttl > max or ttl % 1 ~= 0 then
  return redis.error_reply('IDEMPOTENT invalid ttl')
end
if not lease or lease < 1 or lease > max or lease % 1 ~= 0 then
  return redis.error_reply('IDEMPOTENT invalid lease')
end
local new = ARGV[1]
if #new ~= 42 or string.byte(new, 1) ~= 1 or string.sub(new, 2, 2) ~= 'p' then
  return redis.error_reply('IDEMPOTENT invalid record')
end
local time = redis.call('TIME')
redis.call('SET', KEYS[1], new, 'PX', lease)
return {'claimed', time[1], time[2]}
