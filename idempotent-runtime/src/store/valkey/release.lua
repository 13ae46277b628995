-- release: give up the current claim (delete its processing record) so a retry may run.
-- KEYS[1]  the record
-- ARGV[1]  the claim's token: nonce (16 bytes) and counter (8 bytes big-endian)
-- Returns  "ok" | "stale" (not the current live claim; completed records are never released)
--          | "corrupt" (the stored record cannot be read; nothing changed)
local record = redis.call('GET', KEYS[1])
if not record then return 'stale' end
if #record < 42 or string.byte(record, 1) ~= 2 then return 'corrupt' end
if string.sub(record, 19, 42) ~= ARGV[1] or string.byte(record, 2) ~= 112 then
  return 'stale'
end
redis.call('DEL', KEYS[1])
return 'ok'
