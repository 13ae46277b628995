-- prelude: shared by every script that writes (concatenated before it at build time).
-- A record is one string value (format.rs): version byte 2, state byte (112 "p" processing,
-- 99 "c" completed, 110 "n" done-not-replayable), fingerprint (bytes 3..18), claim nonce
-- (19..34), fencing counter (35..42, big-endian), then for "c" the response. The scripts
-- read it with string.byte and string.sub in place: no helper functions, since a script's
-- local functions are made anew on every call, and these scripts run on every request.
-- The largest TTL or lease accepted: 365 days in ms (MAX_DURATION; a Rust test pins it).
-- A duration argument is valid when it is a whole number in 1..MAX_DURATION.
local MAX_DURATION = 31536000000
