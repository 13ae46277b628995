#!lua
-- claim: take the key when no live record holds it; otherwise return the live record.
-- A record is one string value (format.rs): version byte 2, state byte ("p" processing,
-- "c" completed, "n" done-not-replayable), fingerprint (16 bytes, bytes 3..18), claim nonce
-- (16 bytes, 19..34), fencing counter (8 bytes big-endian, 35..42), then for "c" the
-- response. A processing record expires with its lease (server time), so a record that
-- exists is live.
-- KEYS[1]  the record
-- ARGV[1]  the processing record to write (42 bytes, state "p"; its counter is filled here)
-- ARGV[2]  lease in ms
-- Returns  {"claimed", counter}  the caller holds the claim; counter = its 8 counter bytes
--                                (the server time in µs; or the live claim's own counter
--                                when this claim, same nonce, was sent before: a re-send)
--          {"exists", record}    a live record of another claim, as stored
--          error "IDEMPOTENT ..." invalid arguments; nothing written
local new = ARGV[1]
local record = redis.call('GET', KEYS[1])
if record then
  if string.sub(record, 2, 2) == 'p' and string.sub(record, 19, 34) == string.sub(new, 19, 34) then
    return {'claimed', string.sub(record, 35, 42)}
  end
  return {'exists', record}
end
-- Arguments are checked before the first write (a replay needs none of them).
-- The largest TTL or lease accepted: 365 days in ms (MAX_DURATION; a Rust test pins it).
local max = 31536000000
local lease = tonumber(ARGV[2])
if not lease or lease < 1 or lease > max or lease % 1 ~= 0 then
  return redis.error_reply('IDEMPOTENT invalid lease')
end
if #new ~= 42 or string.byte(new, 1) ~= 2 or string.sub(new, 2, 2) ~= 'p' then
  return redis.error_reply('IDEMPOTENT invalid record')
end
local time = redis.call('TIME')
local counter = struct.pack('>I8', time[1] * 1000000 + time[2])
redis.call('SET', KEYS[1], string.sub(new, 1, 34) .. counter, 'PX', lease)
return {'claimed', counter}
