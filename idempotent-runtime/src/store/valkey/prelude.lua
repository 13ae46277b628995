-- prelude: shared by every script that writes (concatenated before it at build time).
-- A record is one string value (format.rs): version byte 2, state byte ("p" processing,
-- "c" completed, "n" done-not-replayable), fingerprint (bytes 3..18), claim nonce (19..34),
-- fencing counter (35..42, big-endian), then for "c" the response.
-- The largest TTL or lease accepted: 365 days in ms (MAX_DURATION; a Rust test pins it).
local MAX_DURATION = 31536000000
-- A TTL or lease argument in ms, or nil when it is not a whole number in 1..MAX_DURATION.
local function duration(arg)
  local ms = tonumber(arg)
  if not ms or ms < 1 or ms > MAX_DURATION or ms % 1 ~= 0 then return nil end
  return ms
end
-- Whether a stored value has this format's header.
local function readable(record)
  return #record >= 42 and string.byte(record, 1) == 2
end
local function state(record) return string.sub(record, 2, 2) end
local function fingerprint(record) return string.sub(record, 3, 18) end
local function nonce(record) return string.sub(record, 19, 34) end
-- The claim's whole token: nonce and counter.
local function token(record) return string.sub(record, 19, 42) end
