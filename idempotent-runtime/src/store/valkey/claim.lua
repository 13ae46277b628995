-- claim: take the key when no live record holds it; otherwise return the live record. A
-- processing record expires with its lease (server time), so a record that exists is live.
-- KEYS[1]  the record
-- ARGV[1]  the claim's id: fingerprint and nonce (32 bytes); the record written is version 2,
--          state "p", the id, then the counter (the server time in µs)
-- ARGV[2]  lease in ms (handed to SET as sent: no number formatted back)
-- ARGV[3]  optional: present when the caller caches completed records locally
-- Returns  counter (integer)  the caller holds the claim: its fencing counter (or the live
--                             claim's own, when this claim, same nonce, was sent before:
--                             a re-send)
--          record (string)    a live record of another claim, as stored
--          {record, pttl}     with ARGV[3], for a completed record: its remaining TTL in ms
--                             (the local cache keeps it no longer)
--          error              invalid arguments ("IDEMPOTENT ...", or SET's own refusal of
--                             the lease); nothing written
local record = redis.call('GET', KEYS[1])
if record then
  -- Longer than the header: a completed record and its response, the common replay; its
  -- state is not read (the caller decodes the record, and finds any corruption).
  local state = #record > 42 and 99 or string.byte(record, 2)
  if state == 112 and #record == 42
      and string.sub(record, 19, 34) == string.sub(ARGV[1], 17, 32) then
    return (struct.unpack('>I8', record, 35))
  end
  if ARGV[3] and state ~= 112 then
    return {record, redis.call('PTTL', KEYS[1])}
  end
  return record
end
-- Arguments are checked before the first write (a replay needs none of them). The lease's
-- upper bound is checked on its text: no longer than MAX_DURATION's 11 digits, and when as
-- long, not after them (for digits of one length, text order is number order; a Rust test
-- pins the digits). That it is a whole number of at least 1 is left to SET, which refuses
-- anything else before it writes ("value is not an integer or out of range", "invalid expire
-- time"): a tonumber and its comparisons cost more than all of this, and catching SET's error
-- with pcall made every later script dearer (measured: ARCHITECTURE.md).
local id = ARGV[1]
local lease = ARGV[2]
if not lease or #lease > 11 or (#lease == 11 and lease > '31536000000') then
  return redis.error_reply('IDEMPOTENT invalid lease')
end
if #id ~= 32 then
  return redis.error_reply('IDEMPOTENT invalid record')
end
local time = redis.call('TIME')
local counter = time[1] * 1000000 + time[2]
-- GET makes SET reply with the value it replaced (none: the key is absent, read above) rather
-- than OK, which would come back as a table to build and collect.
redis.call('SET', KEYS[1], '\002p' .. id .. struct.pack('>I8', counter), 'PX', lease, 'GET')
return counter
