-- claim: take the key when no live record holds it; otherwise return the live record. A
-- processing record expires with its lease (server time), so a record that exists is live.
-- KEYS[1]  the record
-- ARGV[1]  the processing record to write (42 bytes, state "p"; its counter is filled here)
-- ARGV[2]  lease in ms
-- ARGV[3]  optional: present when the caller caches completed records locally
-- Returns  {"claimed", counter}  the caller holds the claim; counter = its 8 counter bytes
--                                (the server time in µs; or the live claim's own counter
--                                when this claim, same nonce, was sent before: a re-send)
--          {"exists", record}    a live record of another claim, as stored
--          {"exists", record, pttl}  with ARGV[3], for a completed record: its remaining
--                                TTL in ms (the local cache keeps it no longer)
--          error "IDEMPOTENT ..." invalid arguments; nothing written
local new = ARGV[1]
local record = redis.call('GET', KEYS[1])
if record then
  if state(record) == 'p' and nonce(record) == nonce(new) then
    return {'claimed', string.sub(record, 35, 42)}
  end
  if ARGV[3] and state(record) ~= 'p' then
    return {'exists', record, redis.call('PTTL', KEYS[1])}
  end
  return {'exists', record}
end
-- Arguments are checked before the first write (a replay needs none of them).
local lease = duration(ARGV[2])
if not lease then return redis.error_reply('IDEMPOTENT invalid lease') end
if #new ~= 42 or not readable(new) or state(new) ~= 'p' then
  return redis.error_reply('IDEMPOTENT invalid record')
end
local time = redis.call('TIME')
local counter = struct.pack('>I8', time[1] * 1000000 + time[2])
redis.call('SET', KEYS[1], string.sub(new, 1, 34) .. counter, 'PX', lease)
return {'claimed', counter}
